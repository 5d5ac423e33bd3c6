mod fixtures;
mod framing;
mod http;
mod retry;
mod bounds;
