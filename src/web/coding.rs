//! Which content coding an answer is sent in: `Accept-Encoding` read as RFC 9110 section
//! 12.5.3 says. Each listed coding has a weight (`q`, 1 when absent, 0 refusing it); `*`
//! stands for every coding not listed; `identity` (no coding) is acceptable unless refused by
//! name or by `*;q=0`.
//!
//! Of the codings we send, the one of highest weight wins, zstd on a tie with gzip: Prometheus
//! with `--enable-feature=zstd-scrape` sends `zstd,gzip`, ranking both alike, and a zstd page
//! is smaller for less CPU. A coding reached through `*` alone is gzip, the one every client
//! decodes: zstd is sent only to a client that names it. When `identity` outranks every coding
//! we send (`gzip;q=0.5, identity`), or nothing we send is acceptable, the answer goes
//! uncompressed; an answer is never refused for its coding (the RFC's choice for a field that
//! leaves no acceptable coding is ours to make, and a scrape had better get a page).

use crate::expose::negotiate::parse_weight;
use crate::web::compress::Codec;

/// The coding to send an answer in: `None` for none.
pub fn negotiate_coding(accept_encoding: Option<&str>) -> Option<Codec> {
    let mut weights = Weights::default();
    for element in accept_encoding.unwrap_or_default().split(',') {
        let mut parts = element.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default().to_ascii_lowercase();
        let mut weight = Some(1000);
        for parameter in parts {
            if let Some((name, value)) = parameter.split_once('=') {
                if name.trim().eq_ignore_ascii_case("q") {
                    weight = parse_weight(value.trim());
                }
            }
        }
        // An element whose weight does not parse is not understood: it is left out.
        let Some(weight) = weight else { continue };
        let slot = match coding.as_str() {
            "zstd" => &mut weights.zstd,
            "gzip" | "x-gzip" => &mut weights.gzip,
            "identity" => &mut weights.identity,
            "*" => &mut weights.any,
            _ => continue,
        };
        *slot = Some(slot.map_or(weight, |held| held.max(weight)));
    }
    let zstd = weights.zstd.unwrap_or(0);
    let gzip = weights.gzip.or(weights.any).unwrap_or(0);
    // identity without a weight of its own is acceptable, ranked below every listed coding.
    let identity = weights.identity.or(weights.any.filter(|q| *q == 0));
    let (codec, weight) = if zstd > 0 && zstd >= gzip {
        (Codec::zstd(), zstd)
    } else if gzip > 0 {
        (Codec::Gzip, gzip)
    } else {
        return None;
    };
    match identity {
        Some(identity) if identity > weight => None,
        _ => Some(codec),
    }
}

/// The weights, in thousandths, an `Accept-Encoding` field gives the codings we know.
#[derive(Default)]
struct Weights {
    zstd: Option<u16>,
    gzip: Option<u16>,
    identity: Option<u16>,
    any: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coding(field: &str) -> Option<&'static str> {
        negotiate_coding(Some(field)).map(Codec::name)
    }

    #[test]
    fn zstd_wins_when_ranked_at_least_as_high_as_gzip() {
        assert_eq!(coding("zstd,gzip"), Some("zstd"));
        assert_eq!(coding("gzip, zstd"), Some("zstd"));
        assert_eq!(coding("gzip;q=0.5, zstd"), Some("zstd"));
        assert_eq!(coding("zstd;q=0.5, gzip;q=0.5"), Some("zstd"));
        assert_eq!(coding("zstd;q=0.4, gzip;q=0.5"), Some("gzip"));
        assert_eq!(coding("ZSTD;Q=1"), Some("zstd"));
        assert_eq!(coding("deflate, gzip, br, zstd"), Some("zstd"));
    }

    #[test]
    fn a_weight_of_zero_refuses_a_coding() {
        assert_eq!(coding("zstd;q=0, gzip"), Some("gzip"));
        assert_eq!(coding("zstd;q=0.000, gzip"), Some("gzip"));
        assert_eq!(coding("gzip;q=0"), None);
        assert_eq!(coding("gzip; q=0.0"), None);
        assert_eq!(coding("*;q=0, zstd"), Some("zstd"));
        assert_eq!(coding("*, gzip;q=0"), None);
    }

    #[test]
    fn the_wildcard_gets_gzip_and_identity_can_outrank_both() {
        assert_eq!(coding("*"), Some("gzip"));
        assert_eq!(coding("x-gzip"), Some("gzip"));
        assert_eq!(coding("identity"), None);
        assert_eq!(coding("gzip;q=0.5, identity"), None);
        assert_eq!(coding("gzip;q=0.5, identity;q=0.1"), Some("gzip"));
        assert_eq!(coding("gzip, identity;q=0"), Some("gzip"));
    }

    #[test]
    fn what_is_unknown_or_malformed_leaves_the_answer_plain() {
        assert_eq!(negotiate_coding(None), None);
        assert_eq!(coding(""), None);
        assert_eq!(coding("br"), None);
        assert_eq!(coding("deflate, br"), None);
        assert_eq!(coding("garbage;;;==,,"), None);
        assert_eq!(coding("\u{e9}t\u{e9}"), None);
        // A weight that is no qvalue leaves its element out, not the field.
        assert_eq!(coding("zstd;q=2, gzip"), Some("gzip"));
        assert_eq!(coding("zstd;q=abc, gzip;q=0.5"), Some("gzip"));
        assert_eq!(coding("zstd;q=-1"), None);
        assert_eq!(coding("gzip;q=0.5555"), None);
    }
}
