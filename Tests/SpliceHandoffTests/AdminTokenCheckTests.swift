import SpliceHandoff
import Testing

@Suite("admin token check between predecessor and successor")
struct AdminTokenCheckTests {
    @Test("the digest is SHA-256 in hex; only the same setting passes")
    func mismatch() throws {
        // `printf abc | sha256sum`
        #expect(AdminTokenCheck.digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(AdminTokenCheck.digest(nil) == nil)
        let digest = AdminTokenCheck.digest("s3cret")
        #expect(AdminTokenCheck.mismatch(predecessorDigest: nil, token: nil) == nil)
        #expect(AdminTokenCheck.mismatch(predecessorDigest: digest, token: "s3cret") == nil)
        let missing = try #require(AdminTokenCheck.mismatch(predecessorDigest: digest, token: nil))
        #expect(missing.contains("without authentication"))
        #expect(AdminTokenCheck.mismatch(predecessorDigest: digest, token: "other") != nil)
        #expect(AdminTokenCheck.mismatch(predecessorDigest: nil, token: "s3cret") != nil)
    }
}
