"""The hall's self-service machine (issue 8 item 6): check in by ID number, take a walk-in or
elderly green-channel ticket, print it; elder-mode sizes always."""
