//! The HTTP server, in tiny_http's model: an acceptor, a thread per connection that only moves
//! bytes under deadlines, and a fixed pool of workers that answer requests.

pub mod auth;
pub mod budget;
pub mod client_certs;
pub mod coding;
pub mod compress;
pub mod connections;
pub mod http1;
pub mod ratelimit;
pub mod reload;
pub mod routes;
pub mod socket;
pub mod tls;
pub mod webconfig;
pub mod workers;
pub mod x509;
