mod fixtures;
mod framing;
mod http;
mod retry;
