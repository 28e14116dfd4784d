import Crypto

/// Whether a successor guards the admin API as its predecessor did. The admin socket moves
/// in a handoff, the token does not: a successor started without it would serve the
/// predecessor's admin API to anyone, silently. So the predecessor sends the SHA-256 of its
/// token (never the token), and a successor whose own differs refuses before its ack.
public enum AdminTokenCheck {
    /// The token's SHA-256 in hex; nil without a token.
    public static func digest(_ token: String?) -> String? {
        guard let token else { return nil }
        return SHA256.hash(data: Array(token.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// Why a successor with `token` must not take over from a predecessor whose token has
    /// `predecessorDigest`; nil when both require the same token or neither requires one.
    public static func mismatch(predecessorDigest: String?, token: String?) -> String? {
        switch (predecessorDigest, digest(token)) {
        case (nil, nil):
            return nil
        case (let theirs?, let ours?):
            return theirs == ours ? nil
                : "the running gateway requires a different admin token; pass the same --admin-token-file (or SPLICEGATE_ADMIN_TOKEN) again"
        case (.some, nil):
            return "the running gateway requires an admin token and this process has none, so it would serve the admin API without authentication; pass the same --admin-token-file (or SPLICEGATE_ADMIN_TOKEN) again"
        case (nil, .some):
            return "this process has an admin token and the running gateway has none; start the successor with the same admin settings (without a token), then change it with a restart"
        }
    }
}
