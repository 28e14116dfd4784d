import SpliceCore
import Testing

@Suite("Direction as text")
struct DirectionTests {
    @Test("prints as the API names it, alone and inside collections (as log metadata does)")
    func printsItsAPIName() {
        #expect("\(Direction.clientToServer)" == "client_to_server")
        #expect("\([Direction.serverToClient: 12])" == "[server_to_client: 12]")
        #expect("\([Direction.clientToServer, .serverToClient])" == "[client_to_server, server_to_client]")
    }
}
