//! JWT verification and the `Principal` it yields.
