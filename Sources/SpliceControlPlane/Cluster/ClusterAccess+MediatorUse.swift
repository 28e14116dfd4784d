import Foundation
import SpliceCore
import SplicePeerClient

extension ClusterAccess {
    /// Before a mediator leaves the cluster: 409 naming a live node where a session has it
    /// spliced in, 503 when a live node cannot say (nothing is changed then). Each node is
    /// asked for `GET /api/v1/mediators/{name}` with the caller's credentials.
    func ensureUnusedElsewhere(_ name: MediatorName, request: HTTPRequest) async throws(APIError) {
        let headers = relay.headers(of: request, extra: [])
        let target = "/api/v1/mediators/" + PeerRelay.percentEncoded(name.text)
        let answers = await withTaskGroup(of: (ClusterNode, Result<PeerClient.Response, PeerClient.Failure>).self) {
            group in
            for node in peers {
                group.addTask { [client] in
                    let peerRequest = PeerClient.Request(method: "GET", baseURL: node.adminURL, target: target,
                                                         headers: headers)
                    return (node, await client.send(peerRequest, timeout: .seconds(2)))
                }
            }
            var answers: [(ClusterNode, Result<PeerClient.Response, PeerClient.Failure>)] = []
            for await answer in group { answers.append(answer) }
            return answers.sorted { $0.0.name < $1.0.name }
        }
        for (node, answer) in answers {
            let cannotSay = "mediator '\(name)' not unregistered: node '\(node.name)' cannot say whether a session "
                + "there uses it"
            switch answer {
            case .failure(let failure):
                throw .clusterStoreUnavailable("\(cannotSay) (\(failure)); nothing was changed")
            case .success(let response) where response.status == 404:
                continue
            case .success(let response) where response.status == 200:
                let inUse = (try? JSON.parse(String(decoding: response.body, as: UTF8.self)))?["in_use"]?.int
                guard let inUse else { throw .clusterStoreUnavailable("\(cannotSay) (an unreadable answer); nothing was changed") }
                if inUse > 0 {
                    throw .conflict("mediator '\(name)' is spliced into \(inUse) hop(s) on node '\(node.name)'; "
                        + "remove them first")
                }
            case .success(let response):
                throw .clusterStoreUnavailable("\(cannotSay) (it answered \(response.status)); nothing was changed")
            }
        }
    }
}
