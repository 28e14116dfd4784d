import SpliceCore
import Testing

@testable import SpliceControlPlane

@Suite("Ids in paths and queries")
struct IdentifierParameterTests {
    @Test("a path id of another kind names no resource: 404, as a malformed one")
    func pathWrongKind() throws {
        #expect(try RouteParameters(["id": "s7"]).id("id", as: SessionID.self) == SessionID(number: 7))
        #expect(try RouteParameters(["hop": "h3"]).id("hop", as: HopID.self) == HopID(number: 3))
        #expect(throws: APIError.notFound("no session h1")) { try RouteParameters(["id": "h1"]).id("id", as: SessionID.self) }
        #expect(throws: APIError.notFound("no session l1")) { try RouteParameters(["id": "l1"]).id("id", as: SessionID.self) }
        #expect(throws: APIError.notFound("no hop x1")) { try RouteParameters(["hop": "x1"]).id("hop", as: HopID.self) }
        #expect(throws: APIError.notFound("no split h1")) { try RouteParameters(["split": "h1"]).id("split", as: SplitID.self) }
        #expect(throws: APIError.notFound("no listener s1")) { try RouteParameters(["id": "s1"]).id("id", as: ListenerID.self) }
    }

    @Test("a query id of another kind is malformed: 422 naming the expected letter")
    func queryWrongKind() throws {
        let request = HTTPRequest(method: .GET, target: "/api/v1/sessions?listener=s1&cursor=s4")
        #expect(try request.idQuery("cursor", as: SessionID.self) == SessionID(number: 4))
        #expect(try request.idQuery("absent", as: SessionID.self) == nil)
        #expect(throws: APIError.invalid("query parameter 'listener' must be an id like l1, got 's1'")) {
            try request.idQuery("listener", as: ListenerID.self)
        }
    }
}
