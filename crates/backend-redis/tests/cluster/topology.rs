//! A [`Rewrite`] for a [`DropReplyProxy`] in front of every node of a Redis Cluster: the
//! addresses the nodes hand out (the replies to `CLUSTER SLOTS`, `CLUSTER SHARDS` and
//! `CLUSTER NODES`, and `MOVED`/`ASK` redirections) are replaced by the proxy's address for
//! that node, so that a cluster client that learns the topology from the nodes still sends
//! everything through the proxy.
//!
//! It follows the RESP protocol (RESP2, and RESP3's types): it parses the client's requests to
//! know which reply answers a `CLUSTER` topology command, and re-encodes the replies it
//! changes. An address that names no node behind the proxy is an error (the connection is
//! closed), so a client can never silently go around the proxy.

use std::collections::VecDeque;

use stats_core::testkit::proxy::{Rewrite, Route};

/// One RESP value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Frame {
    /// A one-line value (`+`, `-`, `:`, `_`, `,`, `#`, `(`): its type byte and its text.
    Line(u8, Vec<u8>),
    /// A length-prefixed value (`$`, `!`, `=`): its type byte and its bytes, `None` for a
    /// null (`$-1`).
    Blob(u8, Option<Vec<u8>>),
    /// An aggregate (`*`, `~`, `>`, and `%`, `|` whose pairs are stored flat): its type byte and
    /// its elements, `None` for a null (`*-1`).
    Many(u8, Option<Vec<Frame>>),
}

/// Parses one frame at the start of `buf`: the frame and its length in bytes, `None` if `buf`
/// holds only part of one.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], at: usize) -> Result<Option<(Frame, usize)>, String> {
    let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let (kind, text) = (buf.get(at).copied(), &buf[at + 1.min(end)..at + end]);
    let after_line = at + end + 2;
    let length = || -> Result<i64, String> {
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("bad RESP length {:?}", String::from_utf8_lossy(text)))
    };
    match kind {
        Some(kind @ (b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(')) => {
            Ok(Some((Frame::Line(kind, text.to_vec()), after_line)))
        }
        Some(kind @ (b'$' | b'!' | b'=')) => {
            let n = length()?;
            if n < 0 {
                return Ok(Some((Frame::Blob(kind, None), after_line)));
            }
            let n = n as usize;
            if buf.len() < after_line + n + 2 {
                return Ok(None);
            }
            if &buf[after_line + n..after_line + n + 2] != b"\r\n" {
                return Err("a RESP bulk string without its CRLF".into());
            }
            let body = buf[after_line..after_line + n].to_vec();
            Ok(Some((Frame::Blob(kind, Some(body)), after_line + n + 2)))
        }
        Some(kind @ (b'*' | b'~' | b'>' | b'%' | b'|')) => {
            let n = length()?;
            if n < 0 {
                return Ok(Some((Frame::Many(kind, None), after_line)));
            }
            let count = if matches!(kind, b'%' | b'|') {
                2 * n as usize
            } else {
                n as usize
            };
            let (mut items, mut next) = (Vec::with_capacity(count.min(1024)), after_line);
            for _ in 0..count {
                let Some((item, end)) = parse_at(buf, next)? else {
                    return Ok(None);
                };
                items.push(item);
                next = end;
            }
            Ok(Some((Frame::Many(kind, Some(items)), next)))
        }
        _ => Err(format!(
            "not a RESP frame: {:?}",
            String::from_utf8_lossy(&buf[at..at + end])
        )),
    }
}

/// Appends the RESP encoding of `frame` to `out`.
pub(crate) fn encode(frame: &Frame, out: &mut Vec<u8>) {
    match frame {
        Frame::Line(kind, text) => {
            out.push(*kind);
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
        Frame::Blob(kind, None) => out.extend_from_slice(&[*kind, b'-', b'1', b'\r', b'\n']),
        Frame::Blob(kind, Some(body)) => {
            out.extend_from_slice(format!("{}{}\r\n", *kind as char, body.len()).as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
        }
        Frame::Many(kind, None) => out.extend_from_slice(&[*kind, b'-', b'1', b'\r', b'\n']),
        Frame::Many(kind, Some(items)) => {
            let n = if matches!(kind, b'%' | b'|') {
                items.len() / 2
            } else {
                items.len()
            };
            out.extend_from_slice(format!("{}{n}\r\n", *kind as char).as_bytes());
            for item in items {
                encode(item, out);
            }
        }
    }
}

/// The topology commands whose replies name nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Request {
    Slots,
    Shards,
    Nodes,
    Other,
}

/// Rewrites one connection's replies (see the module documentation).
#[derive(Debug)]
pub(crate) struct ClusterAddresses {
    routes: Vec<Route>,
    requests: Vec<u8>,
    replies: Vec<u8>,
    pending: VecDeque<Request>,
    /// A request that was not RESP: reported with the next reply.
    broken: Option<String>,
}

impl ClusterAddresses {
    /// The rewrite of one connection of a proxy with these routes.
    pub(crate) fn new(routes: &[Route]) -> Self {
        ClusterAddresses {
            routes: routes.to_vec(),
            requests: Vec::new(),
            replies: Vec::new(),
            pending: VecDeque::new(),
            broken: None,
        }
    }

    /// The proxy's `(ip, port)` for the node at `host:port`.
    fn proxy_for(&self, host: &str, port: u16) -> Result<(String, u16), String> {
        let upstream = format!("{host}:{port}");
        self.routes
            .iter()
            .find(|route| route.upstream == upstream)
            .map(|route| (route.addr.ip().to_string(), route.addr.port()))
            .ok_or_else(|| format!("a reply names {upstream}, which the proxy does not stand for"))
    }

    fn rewrite(&self, frame: &mut Frame, request: Request) -> Result<(), String> {
        match request {
            Request::Slots => self.slots(frame)?,
            Request::Shards => self.shards(frame)?,
            Request::Nodes => self.nodes(frame)?,
            Request::Other => {}
        }
        self.redirections(frame)
    }

    /// `CLUSTER SLOTS`: `[[start, end, [ip, port, id, ...], ...], ...]`.
    fn slots(&self, frame: &mut Frame) -> Result<(), String> {
        let Frame::Many(_, Some(ranges)) = frame else {
            return Ok(());
        };
        for range in ranges {
            let Frame::Many(_, Some(items)) = range else {
                return Err(format!(
                    "a CLUSTER SLOTS range that is not an array: {range:?}"
                ));
            };
            for node in items.iter_mut().skip(2) {
                let Frame::Many(_, Some(node)) = node else {
                    return Err(format!(
                        "a CLUSTER SLOTS node that is not an array: {node:?}"
                    ));
                };
                let (Some(Frame::Blob(_, Some(ip))), Some(Frame::Line(b':', port))) =
                    (node.first(), node.get(1))
                else {
                    return Err(format!(
                        "a CLUSTER SLOTS node without ip and port: {node:?}"
                    ));
                };
                let (ip, port) = (text(ip)?, number(port)?);
                let (new_ip, new_port) = self.proxy_for(&ip, port)?;
                node[0] = Frame::Blob(b'$', Some(new_ip.into_bytes()));
                node[1] = Frame::Line(b':', new_port.to_string().into_bytes());
            }
        }
        Ok(())
    }

    /// `CLUSTER SHARDS`: shards as maps whose `nodes` are maps with `ip`, `endpoint` and
    /// `port` (a flat array of pairs in RESP2).
    fn shards(&self, frame: &mut Frame) -> Result<(), String> {
        let Frame::Many(_, Some(shards)) = frame else {
            return Ok(());
        };
        for shard in shards {
            let Some(Frame::Many(_, Some(nodes))) = field(shard, "nodes") else {
                return Err(format!("a CLUSTER SHARDS shard without nodes: {shard:?}"));
            };
            for node in nodes {
                let ip = match field(node, "ip") {
                    Some(Frame::Blob(_, Some(ip))) => text(ip)?,
                    _ => return Err(format!("a CLUSTER SHARDS node without ip: {node:?}")),
                };
                let port = match field(node, "port") {
                    Some(Frame::Line(b':', port)) => number(port)?,
                    _ => return Err(format!("a CLUSTER SHARDS node without port: {node:?}")),
                };
                let (new_ip, new_port) = self.proxy_for(&ip, port)?;
                for name in ["ip", "endpoint"] {
                    if let Some(value) = field(node, name) {
                        *value = Frame::Blob(b'$', Some(new_ip.clone().into_bytes()));
                    }
                }
                if let Some(value) = field(node, "port") {
                    *value = Frame::Line(b':', new_port.to_string().into_bytes());
                }
            }
        }
        Ok(())
    }

    /// `CLUSTER NODES`: one line per node, its second word `ip:port@bus-port[,hostname]`.
    fn nodes(&self, frame: &mut Frame) -> Result<(), String> {
        let Frame::Blob(_, Some(body)) = frame else {
            return Ok(());
        };
        let mut out = String::new();
        for line in text(body)?.lines() {
            let mut words: Vec<String> = line.split(' ').map(str::to_owned).collect();
            if let Some(address) = words.get_mut(1) {
                let (ip_port, rest) = address.split_at(address.find('@').unwrap_or(address.len()));
                let (ip, port) = ip_port
                    .rsplit_once(':')
                    .ok_or_else(|| format!("a CLUSTER NODES line without ip:port: {line}"))?;
                let port = number(port.as_bytes())?;
                // A node without an address yet (`noaddr`, port 0) names nobody to go to.
                if port != 0 {
                    let (new_ip, new_port) = self.proxy_for(ip, port)?;
                    *address = format!("{new_ip}:{new_port}{rest}");
                }
            }
            out.push_str(&words.join(" "));
            out.push('\n');
        }
        *body = out.into_bytes();
        Ok(())
    }

    /// `MOVED <slot> <ip:port>` and `ASK <slot> <ip:port>` errors, also inside arrays (the
    /// replies of a transaction).
    fn redirections(&self, frame: &mut Frame) -> Result<(), String> {
        match frame {
            Frame::Line(b'-', message) | Frame::Blob(b'!', Some(message)) => {
                let line = text(message)?;
                let words: Vec<&str> = line.split(' ').collect();
                if let [word @ ("MOVED" | "ASK"), slot, address] = words.as_slice() {
                    let (ip, port) = address
                        .rsplit_once(':')
                        .ok_or_else(|| format!("a redirection without ip:port: {line}"))?;
                    let (new_ip, new_port) = self.proxy_for(ip, number(port.as_bytes())?)?;
                    *message = format!("{word} {slot} {new_ip}:{new_port}").into_bytes();
                }
                Ok(())
            }
            Frame::Many(_, Some(items)) => items.iter_mut().try_for_each(|i| self.redirections(i)),
            _ => Ok(()),
        }
    }
}

impl Rewrite for ClusterAddresses {
    fn request(&mut self, bytes: &[u8]) {
        self.requests.extend_from_slice(bytes);
        while self.broken.is_none() {
            match parse(&self.requests) {
                Ok(Some((frame, used))) => {
                    self.requests.drain(..used);
                    self.pending.push_back(request_of(&frame));
                }
                Ok(None) => break,
                Err(e) => self.broken = Some(format!("a request that is not RESP: {e}")),
            }
        }
    }

    fn reply(&mut self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        self.replies.extend_from_slice(bytes);
        let mut out = Vec::with_capacity(self.replies.len());
        while let Some((mut frame, used)) = parse(&self.replies)? {
            self.replies.drain(..used);
            // Pushes (RESP3) and attributes answer no request of their own.
            let request = if matches!(frame, Frame::Many(b'>' | b'|', _)) {
                Request::Other
            } else {
                self.pending
                    .pop_front()
                    .ok_or_else(|| format!("a reply to no request: {frame:?}"))?
            };
            self.rewrite(&mut frame, request)?;
            encode(&frame, &mut out);
        }
        Ok(out)
    }
}

/// Which topology command a request is.
fn request_of(frame: &Frame) -> Request {
    let Frame::Many(b'*', Some(args)) = frame else {
        return Request::Other;
    };
    let word = |i: usize| match args.get(i) {
        Some(Frame::Blob(_, Some(arg))) => arg.to_ascii_uppercase(),
        _ => Vec::new(),
    };
    if word(0) != b"CLUSTER" {
        return Request::Other;
    }
    match word(1).as_slice() {
        b"SLOTS" => Request::Slots,
        b"SHARDS" => Request::Shards,
        b"NODES" => Request::Nodes,
        _ => Request::Other,
    }
}

/// The value of `name` in a map (RESP3 `%`, or a RESP2 array of pairs).
fn field<'f>(map: &'f mut Frame, name: &str) -> Option<&'f mut Frame> {
    let Frame::Many(_, Some(items)) = map else {
        return None;
    };
    let at = items
        .chunks(2)
        .position(|pair| matches!(&pair[0], Frame::Blob(_, Some(key)) | Frame::Line(b'+', key) if key == name.as_bytes()))?;
    items.get_mut(2 * at + 1)
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("not UTF-8: {bytes:?}"))
}

fn number(bytes: &[u8]) -> Result<u16, String> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| format!("not a port: {:?}", String::from_utf8_lossy(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Vec<Route> {
        vec![
            Route {
                upstream: "127.0.0.1:7000".into(),
                addr: "127.0.0.1:41000".parse().unwrap(),
            },
            Route {
                upstream: "127.0.0.1:7001".into(),
                addr: "127.0.0.1:41001".parse().unwrap(),
            },
        ]
    }

    fn command(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        out
    }

    /// Feeds `reply` to a fresh rewrite one byte at a time after `requests`.
    fn rewritten(requests: &[Vec<u8>], reply: &[u8]) -> Result<Vec<u8>, String> {
        let mut rewrite = ClusterAddresses::new(&routes());
        for request in requests {
            rewrite.request(request);
        }
        let mut out = Vec::new();
        for byte in reply {
            out.extend(rewrite.reply(std::slice::from_ref(byte))?);
        }
        Ok(out)
    }

    #[test]
    fn frames_round_trip_and_a_partial_frame_waits() {
        let wire: &[u8] = b"*6\r\n+OK\r\n-ERR x\r\n:42\r\n$3\r\nab\n\r\n$-1\r\n*2\r\n%1\r\n$1\r\nk\r\n,1.5\r\n*-1\r\n";
        let (frame, used) = parse(wire).unwrap().expect("complete");
        assert_eq!(used, wire.len());
        let mut out = Vec::new();
        encode(&frame, &mut out);
        assert_eq!(out, wire);
        for cut in 0..wire.len() {
            assert_eq!(parse(&wire[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse(b"?what\r\n").is_err());
        assert!(parse(b"$2\r\nabcd\r\n").is_err());
    }

    #[test]
    fn cluster_slots_name_the_proxy() {
        let reply = b"*1\r\n*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n\
                      *3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nir\r\n";
        let out = rewritten(&[command(&["CLUSTER", "SLOTS"])], reply).unwrap();
        assert_eq!(
            out,
            b"*1\r\n*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:41000\r\n$2\r\nid\r\n\
              *3\r\n$9\r\n127.0.0.1\r\n:41001\r\n$2\r\nir\r\n"
        );
        // The same integers in the answer to another command are data: left alone.
        let data = b"*1\r\n*3\r\n:0\r\n:5460\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n";
        assert_eq!(rewritten(&[command(&["GET", "k"])], data).unwrap(), data);
    }

    #[test]
    fn cluster_shards_and_nodes_name_the_proxy() {
        let shards = b"*1\r\n*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n*6\r\n\
                       $4\r\nport\r\n:7001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n\
                       $8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n";
        let out = rewritten(&[command(&["cluster", "shards"])], shards).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(":41001\r\n") && !text.contains(":7001"),
            "{text}"
        );
        let nodes = "a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                     b 127.0.0.1:7001@17001,host master - 0 1 2 connected 5461-16383\n\
                     c :0@0 noaddr - 0 0 0 disconnected\n";
        let reply = format!("${}\r\n{nodes}\r\n", nodes.len());
        let out = rewritten(&[command(&["CLUSTER", "NODES"])], reply.as_bytes()).unwrap();
        let (frame, _) = parse(&out).unwrap().unwrap();
        let Frame::Blob(_, Some(body)) = frame else {
            panic!("{frame:?}")
        };
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "a 127.0.0.1:41000@17000 myself,master - 0 0 1 connected 0-5460\n\
             b 127.0.0.1:41001@17001,host master - 0 1 2 connected 5461-16383\n\
             c :0@0 noaddr - 0 0 0 disconnected\n"
        );
    }

    #[test]
    fn redirections_name_the_proxy_and_replies_pair_with_pipelined_requests() {
        let requests = [
            command(&["GET", "a"]),
            command(&["CLUSTER", "SLOTS"]),
            command(&["GET", "b"]),
        ];
        let replies = b"-MOVED 15495 127.0.0.1:7001\r\n*0\r\n-ASK 1 127.0.0.1:7000\r\n";
        assert_eq!(
            rewritten(&requests, replies).unwrap(),
            b"-MOVED 15495 127.0.0.1:41001\r\n*0\r\n-ASK 1 127.0.0.1:41000\r\n"
        );
        // An error that is no redirection passes unchanged.
        let other = b"-ERR MOVED away\r\n";
        assert_eq!(rewritten(&requests, other).unwrap(), other);
    }

    #[test]
    fn an_address_behind_no_route_or_a_reply_to_nothing_is_an_error() {
        let moved = rewritten(&[command(&["GET", "a"])], b"-MOVED 1 127.0.0.1:7002\r\n");
        assert!(moved.unwrap_err().contains("127.0.0.1:7002"));
        assert!(
            rewritten(&[], b"+OK\r\n")
                .unwrap_err()
                .contains("no request")
        );
        let mut rewrite = ClusterAddresses::new(&routes());
        rewrite.request(b"?inline\r\n");
        assert!(rewrite.reply(b"+OK\r\n").unwrap_err().contains("not RESP"));
    }
}
