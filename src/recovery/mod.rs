//! recovery (in progress)
