//! Decode a body file with one scheme and print the events as JSON lines.
#![allow(clippy::unwrap_used)]
fn main() {
    let mut args = std::env::args().skip(1);
    let scheme = pod_provider::WireScheme::parse(&args.next().unwrap()).unwrap();
    let body = std::fs::read(args.next().unwrap()).unwrap();
    for e in pod_provider::decode_body(scheme, &body, 0, 1 << 24) {
        println!("{}", serde_json::to_string(&e).unwrap());
    }
}
