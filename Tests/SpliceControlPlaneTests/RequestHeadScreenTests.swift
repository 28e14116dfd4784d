import SpliceCore
import Testing

@testable import SpliceControlPlane

@Suite("Request head screen")
struct RequestHeadScreenTests {
    private let screen = RequestHeadScreen(maxTargetBytes: 64, maxHeaderBytes: 256, maxBodyBytes: 1024)

    private func verdict(_ text: String, peerClosed: Bool = false) -> RequestHeadScreen.Verdict {
        Array(text.utf8).withUnsafeBytes { screen.verdict($0, peerClosed: peerClosed) }
    }

    private func status(_ text: String) -> Int? {
        if case .reject(let problem) = verdict(text) { return problem.status }
        return nil
    }

    @Test("a good head is incomplete at every byte before its end, then accepted")
    func byteByByte() {
        let head = "\r\nPOST /api/v1/listeners?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nX-Empty:\r\n\r\n{}"
        let bytes = Array(head.utf8)
        let end = bytes.count - 2
        for count in 0..<end {
            let partial = bytes.prefix(count).withUnsafeBytes { screen.verdict($0, peerClosed: false) }
            #expect(partial == .incomplete, "after \(count) bytes")
        }
        #expect(verdict(head) == .accept)
        #expect(verdict("GET / HTTP/1.0\r\n\r\n") == .accept)
        #expect(verdict("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n") == .accept)
    }

    @Test("more header lines than the limit get 431, as many as the limit pass")
    func headerLineCount() {
        let lines = { (count: Int) in "GET / HTTP/1.1\r\nHost: t\r\n" + String(repeating: "a:\r\n", count: count - 1) + "\r\n" }
        let wide = RequestHeadScreen(maxTargetBytes: 64, maxHeaderBytes: 64 * 1024, maxBodyBytes: 1024)
        let judge = { (text: String) in Array(text.utf8).withUnsafeBytes { wide.verdict($0, peerClosed: false) } }
        #expect(judge(lines(RequestHeadScreen.maxHeaderLines)) == .accept)
        guard case .reject(let problem) = judge(lines(RequestHeadScreen.maxHeaderLines + 1)) else {
            Issue.record("one header line too many was not refused")
            return
        }
        #expect(problem.status == 431)
    }

    @Test("searching on from where the last look stopped finds the end wherever the bytes were cut")
    func searchingOnlyNewBytes() {
        let bytes = Array("\r\nGET /a HTTP/1.1\r\nHost: t\r\n\r\n".utf8)
        // Arriving one byte at a time: each look searches on from the previous one.
        var searched = 0
        for count in 1...bytes.count {
            let result = bytes.prefix(count).withUnsafeBytes { screen.verdict($0, peerClosed: false, searchedUpTo: searched) }
            #expect(result == (count == bytes.count ? .accept : .incomplete), "after \(count) bytes")
            searched = count
        }
        // Arriving in two pieces, cut anywhere (also inside the final CRLFCRLF).
        for cut in 1..<bytes.count {
            let result = bytes.withUnsafeBytes { screen.verdict($0, peerClosed: false, searchedUpTo: cut) }
            #expect(result == .accept, "cut after \(cut) bytes")
        }
    }

    @Test("ambiguous framing is 400 (RFC 9112 §6.1, §6.3)", arguments: [
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    ])
    func framing(head: String) {
        #expect(status(head) == 400)
    }

    @Test("malformed heads are 400", arguments: [
        "HELLO WORLD\r\n\r\n", "GET\r\n\r\n", "GET  / HTTP/1.1\r\nHost: t\r\n\r\n", "GET / HTTP/1.1 \r\nHost: t\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header\r\n\r\n", "GET / HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nX: a\nb\r\n\r\n", "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "GET /a b HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty\r\n\r\n", "GET / http/1.1\r\nHost: t\r\n\r\n",
    ])
    func malformed(head: String) {
        #expect(status(head) == 400)
    }

    @Test("junk is refused before any end of head: TLS, binary, a bare LF")
    func junkAtOnce() {
        #expect([UInt8]([0x16, 0x03, 0x01, 0x02]).withUnsafeBytes { screen.verdict($0, peerClosed: false) }
            != .incomplete)
        #expect(status("\0") == 400)
        #expect(status("\nGET") == 400)
        #expect(status("G ET") == nil)  // "G" is a method; the rest may still come
    }

    @Test("other statuses: version, coding, sizes, a half-closed peer")
    func statuses() {
        #expect(status("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == 505)
        #expect(status("GET / HTTP/9.9\r\nHost: t\r\n\r\n") == 505)
        #expect(status("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n") == 501)
        #expect(status("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == 501)
        #expect(status("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n") == 413)
        #expect(status("GET /\(String(repeating: "a", count: 64)) HTTP/1.1\r\nHost: t\r\n\r\n") == 414)
        #expect(status("GET /\(String(repeating: "a", count: 2000))") == 414)
        #expect(status("GET / HTTP/1.1\r\nHost: t\r\nX: \(String(repeating: "v", count: 300))\r\n\r\n") == 431)
        #expect(status("GET / HTTP/1.1\r\n" + String(repeating: "X: v\r\n", count: 300)) == 431)
        if case .reject(let problem) = verdict("GET / HTTP/1.1\r\nHost: t\r\n", peerClosed: true) {
            #expect(problem.status == 400)
        } else {
            Issue.record("a head cut by the peer's EOF must be refused")
        }
    }
}
