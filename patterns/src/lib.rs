//! Placement and scale: Modules 1, 2 and 5 of the course (physics,
//! complexity, performance and scale).
//!
//! The crate sits on `observability`; it holds no modules yet.
