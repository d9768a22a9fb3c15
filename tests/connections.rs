//! The HTTP layer under slow, idle, greedy and odd clients: timeouts, the connection cap,
//! keep-alive, pipelining, HTTP/1.0, chunked bodies and `Expect: 100-continue`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use k8s_exporter::write::proto::WriteRequest;
use prost::Message;

use crate::support::{
    eventually, now_ms, parse_response, read_response, sample_value, series, snappy, write_request,
    Exporter, HttpResponse,
};

fn gauge_series(name: &str, value: f64) -> WriteRequest {
    write_request(vec![series(&[("__name__", name)], &[(value, now_ms())])])
}

fn connect(exporter: &Exporter) -> TcpStream {
    let stream = TcpStream::connect(&exporter.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn write_head(body: &[u8], extra: &str) -> String {
    format!(
        "POST /write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
         Content-Encoding: snappy\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
}

fn http_error_count(exporter: &Exporter, reason: &str) -> f64 {
    let series = format!("k8s_exporter_http_errors_total{{reason=\"{reason}\"}}");
    exporter.exporter_value(&series).unwrap_or(-1.0)
}

#[test]
fn clients_trickling_headers_do_not_hold_up_well_behaved_ones() {
    const TRICKLERS: usize = 300;
    let exporter = Exporter::start(&["--web.threads=2"]);
    let mut tricklers: Vec<TcpStream> = (0..TRICKLERS).map(|_| connect(&exporter)).collect();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n\r\n";
    // Every trickler sends a first byte, and keeps sending one byte per round from then on.
    let mut sent = 0;
    let mut round = |tricklers: &mut Vec<TcpStream>| {
        for stream in tricklers.iter_mut() {
            stream.write_all(&request[sent..=sent]).unwrap();
        }
        sent += 1;
    };
    round(&mut tricklers);
    eventually(Duration::from_secs(10), "all tricklers accepted", || {
        let open = exporter.exporter_value("k8s_exporter_http_connections")?;
        (open > TRICKLERS as f64).then_some(())
    });
    round(&mut tricklers);

    assert_eq!(exporter.get("/healthz").status, 200);
    assert_eq!(exporter.write(&gauge_series("served", 3.0)).status, 204);
    assert_eq!(sample_value(&exporter.metrics(), "served"), Some(3.0));
    round(&mut tricklers);
    assert!(
        exporter.exporter_value("k8s_exporter_http_connections") > Some(TRICKLERS as f64),
        "the tricklers were all still connected while the others were answered"
    );
    // The tricklers, left to finish, are answered too.
    for stream in tricklers.iter_mut() {
        stream.write_all(&request[sent..]).unwrap();
    }
    for stream in tricklers.into_iter().take(5) {
        let response = read_response(&mut BufReader::new(stream)).unwrap();
        assert_eq!(response.status, 200);
    }
}

#[test]
fn a_request_not_received_within_the_read_timeout_gets_408_and_keeps_the_store() {
    let exporter = Exporter::start(&["--web.read-timeout=1s"]);
    assert_eq!(exporter.write(&gauge_series("kept", 1.0)).status, 204);

    // A head that trickles in forever.
    let mut trickler = connect(&exporter);
    let started = Instant::now();
    for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: ".iter().cycle() {
        // Past the timeout the server closes, and a write may then fail.
        if started.elapsed() > Duration::from_secs(3) || trickler.write_all(&[*byte]).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let mut raw = Vec::new();
    let _ = trickler.read_to_end(&mut raw);
    let response = parse_response(&raw);
    assert_eq!(response.status, 408, "{}", response.text());
    assert!(response.text().contains("--web.read-timeout=1s"));

    // A body shorter than its Content-Length.
    let body = snappy(&gauge_series("kept", 2.0).encode_to_vec());
    let mut short = connect(&exporter);
    let head = write_head(&body, "").replace(
        &format!("Content-Length: {}", body.len()),
        &format!("Content-Length: {}", body.len() + 10),
    );
    short.write_all(head.as_bytes()).unwrap();
    short.write_all(&body).unwrap();
    let mut raw = Vec::new();
    short.read_to_end(&mut raw).unwrap();
    assert_eq!(parse_response(&raw).status, 408);

    assert_eq!(http_error_count(&exporter, "read_timeout"), 2.0);
    assert_eq!(
        sample_value(&exporter.metrics(), "kept"),
        Some(1.0),
        "the cut-off write stored nothing and lost nothing"
    );
}

#[test]
fn connections_beyond_the_cap_get_503_until_one_closes() {
    let exporter = Exporter::start(&["--web.max-connections=3"]);
    let held: Vec<TcpStream> = (0..3).map(|_| connect(&exporter)).collect();
    let refused = eventually(Duration::from_secs(10), "a refused connection", || {
        let response = crate::support::try_request(&exporter.address, "GET", "/healthz", &[], &[]);
        response.ok().filter(|r| r.status == 503)
    });
    assert!(
        refused.text().contains("--web.max-connections=3"),
        "{}",
        refused.text()
    );
    assert_eq!(refused.header("Connection"), Some("close"));
    drop(held);
    eventually(Duration::from_secs(10), "room for a new connection", || {
        let response = crate::support::try_request(&exporter.address, "GET", "/healthz", &[], &[]);
        response.ok().filter(|r| r.status == 200)
    });
    assert!(http_error_count(&exporter, "connection_limit") >= 1.0);
    assert_eq!(
        exporter.exporter_value("k8s_exporter_http_connections_limit"),
        Some(3.0)
    );
}

#[test]
fn kept_alive_connections_serve_many_requests_then_close_when_idle() {
    let exporter = Exporter::start(&["--web.idle-timeout=1s"]);
    let stream = connect(&exporter);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    for value in 0..3 {
        let body = snappy(&gauge_series("again", f64::from(value)).encode_to_vec());
        writer.write_all(write_head(&body, "").as_bytes()).unwrap();
        writer.write_all(&body).unwrap();
        assert_eq!(read_response(&mut reader).unwrap().status, 204);
    }
    // Some clients send `Content-Length: 0` with a GET: no body, so nothing to close for.
    for _ in 0..2 {
        writer
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        let page = read_response(&mut reader).unwrap();
        assert_eq!(page.header("Connection"), None, "kept alive");
        assert_eq!(sample_value(&page.text(), "again"), Some(2.0));
    }
    // Left idle, the connection is closed by the server.
    let idle_since = Instant::now();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert!(idle_since.elapsed() < Duration::from_secs(9));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let exporter = Exporter::start(&[]);
    let body = snappy(&gauge_series("piped", 5.0).encode_to_vec());
    let mut all = write_head(&body, "").into_bytes();
    all.extend_from_slice(&body);
    all.extend_from_slice(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    all.extend_from_slice(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
    all.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut stream = connect(&exporter);
    stream.write_all(&all).unwrap();
    let mut reader = BufReader::new(stream);
    let statuses: Vec<HttpResponse> = (0..4)
        .map(|_| read_response(&mut reader).unwrap())
        .collect();
    assert_eq!(
        statuses.iter().map(|r| r.status).collect::<Vec<_>>(),
        [204, 200, 404, 200]
    );
    assert_eq!(sample_value(&statuses[1].text(), "piped"), Some(5.0));
    assert_eq!(statuses[3].text(), "ok\n");
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "closed after the request that asked for it"
    );
}

#[test]
fn http_1_0_clients_are_answered_and_closed_unless_they_ask_to_keep_alive() {
    let exporter = Exporter::start(&[]);
    let mut stream = connect(&exporter);
    stream.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let response = parse_response(&raw);
    assert_eq!((response.status, response.text().as_str()), (200, "ok\n"));

    // A page, written as it is rendered, ends where the connection does: even asked to keep
    // alive, the server closes it.
    assert_eq!(exporter.write(&gauge_series("old_client", 4.0)).status, 204);
    let mut stream = connect(&exporter);
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let page = parse_response(&raw);
    assert_eq!(page.header("Transfer-Encoding"), None);
    assert_eq!(page.header("Connection"), Some("close"));
    assert_eq!(sample_value(&page.text(), "old_client"), Some(4.0));

    let stream = connect(&exporter);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    for _ in 0..2 {
        writer
            .write_all(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let response = read_response(&mut reader).unwrap();
        assert_eq!(response.header("Connection"), Some("keep-alive"));
    }
}

#[test]
fn chunked_writes_with_expect_continue_are_stored() {
    let exporter = Exporter::start(&[]);
    let body = snappy(&gauge_series("chunked", 9.0).encode_to_vec());
    let stream = connect(&exporter);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    writer
        .write_all(
            b"POST /write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n\
              Content-Encoding: snappy\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    assert_eq!(read_response(&mut reader).unwrap().status, 100);
    let (first, second) = body.split_at(body.len() / 2);
    for part in [first, second] {
        write!(writer, "{:x}\r\n", part.len()).unwrap();
        writer.write_all(part).unwrap();
        writer.write_all(b"\r\n").unwrap();
    }
    writer.write_all(b"0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut reader).unwrap().status, 204);
    assert_eq!(sample_value(&exporter.metrics(), "chunked"), Some(9.0));
}

#[test]
fn malformed_requests_get_a_one_line_400_and_a_count() {
    let exporter = Exporter::start(&[]);
    for garbage in [
        &b"HELLO\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\n folded: header\r\n\r\n",
        b"POST /write HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\n\xff\xfe: x\r\n\r\n",
    ] {
        let mut stream = connect(&exporter);
        stream.write_all(garbage).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let response = parse_response(&raw);
        assert_eq!(response.status, 400, "{garbage:?}");
        assert_eq!(response.text().lines().count(), 1);
    }
    assert_eq!(http_error_count(&exporter, "bad_request"), 4.0);
    assert_eq!(exporter.get("/healthz").status, 200);
}

#[test]
fn a_client_that_stops_reading_is_cut_off_at_the_write_timeout() {
    let exporter = Exporter::start(&["--web.write-timeout=1s"]);
    // A page of about 8 MB: more than the socket buffers hold between us and the client.
    let big_value = "v".repeat(400);
    for batch in 0..4 {
        let timeseries = (0..5000)
            .map(|i| {
                let index = (batch * 5000 + i).to_string();
                series(
                    &[("__name__", "wide"), ("i", &index), ("pad", &big_value)],
                    &[(1.0, now_ms())],
                )
            })
            .collect();
        assert_eq!(exporter.write(&write_request(timeseries)).status, 204);
    }
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let address: std::net::SocketAddr = exporter.address.parse().unwrap();
    socket.connect(&address.into()).unwrap();
    let mut sleeper: TcpStream = socket.into();
    sleeper
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    eventually(Duration::from_secs(15), "the write timeout", || {
        (http_error_count(&exporter, "write_timeout") == 1.0).then_some(())
    });
    assert_eq!(exporter.get("/healthz").status, 200);
}

#[test]
fn bodies_and_pages_in_flight_are_capped_in_bytes() {
    let exporter = Exporter::start(&["--web.max-bytes-in-flight=64KiB"]);
    // Alone, a page larger than the cap is served: nothing else is held.
    let many: Vec<_> = (0..2000)
        .map(|i| {
            let pod = format!("pod-{i:04}-with-a-long-enough-name");
            series(&[("__name__", "big"), ("pod", &pod)], &[(1.0, now_ms())])
        })
        .collect();
    assert_eq!(exporter.write(&write_request(many)).status, 204);
    let page = exporter.get("/metrics");
    assert_eq!(page.status, 200);
    assert!(page.body.len() > 64 << 10, "{} bytes", page.body.len());

    // A write announcing 60 KiB holds them while it trickles in. `100 Continue` says that its
    // bytes are reserved; until the page above has let go of its own, it gets 503 instead.
    let announced = vec![0u8; 60 << 10];
    let mut holder = eventually(Duration::from_secs(10), "room for the holder", || {
        let stream = connect(&exporter);
        let mut reader = BufReader::new(stream.try_clone().ok()?);
        let mut writer = stream;
        let head = write_head(&announced, "Expect: 100-continue\r\n");
        writer.write_all(head.as_bytes()).ok()?;
        let mut status_line = String::new();
        reader.read_line(&mut status_line).ok()?;
        status_line.contains(" 100 ").then_some(writer)
    });
    holder.write_all(&announced[..10]).unwrap();
    // The holder's own tries may have met the page's bytes and been counted: count from here.
    let refused_before = http_error_count(&exporter, "bytes_in_flight_limit");
    let small = snappy(&gauge_series("squeezed", 1.0).encode_to_vec());
    let probe = vec![0u8; 8 << 10];
    let mut stream = connect(&exporter);
    stream.write_all(write_head(&probe, "").as_bytes()).unwrap();
    stream.write_all(&probe).unwrap();
    let refused = read_response(&mut BufReader::new(stream)).unwrap();
    assert_eq!(refused.status, 503);
    assert!(refused.text().contains("--web.max-bytes-in-flight=65536"));
    assert_eq!(refused.header("Retry-After"), Some("1"));
    // A page is written as it is rendered, but its snapshot of 2000 series is held meanwhile.
    let page = exporter.get("/metrics");
    assert_eq!(page.status, 503, "the snapshot does not fit");
    assert_eq!(
        exporter.get("/healthz").status,
        200,
        "small answers need no room"
    );
    assert_eq!(
        http_error_count(&exporter, "bytes_in_flight_limit") - refused_before,
        2.0,
        "the write and the page"
    );

    // Once the holder is gone, its bytes are free again.
    drop(holder);
    eventually(Duration::from_secs(10), "the write accepted", || {
        let mut stream = connect(&exporter);
        stream.write_all(write_head(&small, "").as_bytes()).ok()?;
        stream.write_all(&small).ok()?;
        let response = read_response(&mut BufReader::new(stream)).ok()?;
        (response.status == 204).then_some(())
    });
    assert_eq!(sample_value(&exporter.metrics(), "squeezed"), Some(1.0));
}
