mod bounds;
mod fixtures;
mod framing;
mod http;
mod requests;
mod retry;
mod secrets;
