"""One router per page of the console."""
