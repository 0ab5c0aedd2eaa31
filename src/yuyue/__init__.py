"""yuyue (预约): unified appointment platform for government service halls."""

__version__ = "0.1.0"
