//! Server-side apply (filled in below).
