import SpliceCore
import Testing

@Suite("HostPort parsing")
struct HostPortTests {
    @Test("accepts IPv4, bracketed IPv6 and names", arguments: [
        ("127.0.0.1:7000", "127.0.0.1", 7000, "127.0.0.1:7000"),
        ("[::1]:80", "::1", 80, "[::1]:80"),
        ("localhost:0", "localhost", 0, "localhost:0"),
        ("redis-1.internal:6379", "redis-1.internal", 6379, "redis-1.internal:6379"),
        ("0.0.0.0:0", "0.0.0.0", 0, "0.0.0.0:0"),
        ("10.20.255.9:1", "10.20.255.9", 1, "10.20.255.9:1"),
    ])
    func accepts(text: String, host: String, port: Int, printed: String) throws {
        let parsed = try HostPort(parsing: text, field: "listen")
        #expect(parsed.host == host)
        #expect(parsed.port == port)
        #expect(parsed.description == printed)
    }

    @Test("rejects what is not host:port with a 422 naming the field", arguments: [
        "", "7000", "host:", ":7000", "host:65536", "host:-1", "host:http", "::1:80", "[::1]80", "[::1",
        "bad host:80", "hôst:80", "host:0x50", "host:99999999999999999999",
        // digits only: Int() alone takes a sign and leading zeros
        "host:+80", "host:+0", "host:08", "host:00", "host:065535", "host: 80", "host:80 ", "host:٨٠",
        // IPv4 only as a dotted quad: resolvers read these as 127.0.0.1 (or octal)
        "127.1:80", "2130706433:80", "127.0.0.01:80", "256.0.0.1:80", "1.2.3.4.5:80", "1..2.3:80", "1.2.3.:80",
    ])
    func rejects(text: String) {
        let error = #expect(throws: APIError.self) { try HostPort(parsing: text, field: "upstream") }
        #expect(error?.status == 422)
        #expect(error?.detail.contains("upstream") == true)
    }
}

@Suite("Split requests")
struct SplitRequestTests {
    @Test("only a client_to_server, block split can be a replica")
    func replica() {
        let address = HostPort(host: "127.0.0.1", port: 6380)
        #expect(SplitRequest(address: address, directions: .clientToServer, onSlow: .block).canBeReplica)
        #expect(!SplitRequest(address: address, directions: .clientToServer, onSlow: .drop).canBeReplica)
        #expect(!SplitRequest(address: address, directions: .both, onSlow: .block).canBeReplica)
        #expect(!SplitRequest(address: address, directions: .serverToClient, onSlow: .block).canBeReplica)
    }
}
