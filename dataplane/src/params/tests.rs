//! Unit and property tests of the URL API.
