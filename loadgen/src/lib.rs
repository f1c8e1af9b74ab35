//! Load generator (issue 3).
