"""Pages of the hall (issue 10 items 1-3): counter screen, check-in desk and the hall's big screen."""
