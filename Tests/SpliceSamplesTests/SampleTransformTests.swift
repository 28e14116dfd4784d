import SpliceSamples
import Testing

@Suite("Sample transform names", .timeLimit(.minutes(2)))
struct SampleTransformTests {
    @Test("every name parses and prints back", arguments: [
        "identity", "upper", "lower", "rot13", "invert", "deflate", "inflate", "delay=0", "delay=250", "delay=60000",
    ])
    func roundTrip(name: String) throws {
        #expect(try SampleTransform(parsing: name).description == name)
    }

    @Test("bad names and delays are refused", arguments: [
        "", "UPPER", "gzip", "delay", "delay=", "delay=-1", "delay=60001", "delay=1.5", "delay=999999999999", "delay= 5",
    ])
    func refused(name: String) {
        #expect(throws: SampleTransformError.self) { try SampleTransform(parsing: name) }
    }

    @Test("delay keeps its milliseconds")
    func delayValue() throws {
        #expect(try SampleTransform(parsing: "delay=1500") == .delay(milliseconds: 1500))
    }
}
