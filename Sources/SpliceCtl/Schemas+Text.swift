import Foundation

/// How the API's objects read in tables and summaries.
extension Components.Schemas.Offsets {
    /// `client_to_server 6, server_to_client 6`.
    var text: String {
        [("client_to_server", clientToServer), ("server_to_client", serverToClient)]
            .compactMap { name, value in value.map { "\(name) \($0)" } }
            .joined(separator: ", ")
    }
}

extension Components.Schemas.Hop {
    /// `h1 upper both @0`.
    var summary: String {
        "\(id) \(mediator ?? address) \(direction.rawValue) @\(position)"
    }
}

extension Components.Schemas.Split {
    /// `x1 127.0.0.1:9100 client_to_server`.
    var summary: String {
        "\(id) \(address) \(direction.rawValue)"
    }
}

extension Components.Schemas.Session {
    /// One row per session: id, its node (in a cluster), listener, ends, state, bytes each
    /// way, hops and splits.
    static func table(_ sessions: [Self]) -> Table {
        let clustered = sessions.contains { $0.node != nil }
        var table = Table(columns: ["ID"] + (clustered ? ["NODE"] : [])
            + ["LISTENER", "CLIENT", "SERVER", "STATE", "C2S", "S2C", "HOPS", "SPLITS"])
        for session in sessions {
            table.add(row: [session.id] + (clustered ? [session.node ?? "-"] : []) + [
                session.listener, session.client, session.server, session.state.rawValue,
                "\(session.bytes.clientToServer)", "\(session.bytes.serverToClient)",
                session.mediators.map(\.id).joined(separator: ",").ifEmpty("-"),
                session.splits.map(\.id).joined(separator: ",").ifEmpty("-"),
            ])
        }
        return table
    }

    /// The session's fields, then its hops and splits.
    var detail: String {
        var lines = [
            "session   \(id)",
        ] + (node.map { ["node      \($0)"] } ?? []) + [
            "listener  \(listener)", "client    \(client)", "server    \(server)",
            "state     \(state.rawValue)",
            "opened    \(ISO8601DateFormatter().string(from: openedAt))",
            "bytes     client_to_server \(bytes.clientToServer), server_to_client \(bytes.serverToClient)",
        ]
        if !mediators.isEmpty {
            var hops = Table("HOP", "MEDIATOR", "DIRECTION", "POSITION", "STATE", "SPLICED AT", "BYTES IN/OUT")
            for hop in mediators {
                let counts = [("c2s", hop.bytes.clientToServer), ("s2c", hop.bytes.serverToClient)]
                    .compactMap { name, bytes in bytes.map { "\(name) \($0._in)/\($0.out)" } }
                hop.add(to: &hops, counts: counts.joined(separator: ", "))
            }
            lines += ["", hops.text]
        }
        if !splits.isEmpty {
            var table = Table("SPLIT", "ADDRESS", "DIRECTION", "ON SLOW", "FAILOVER", "STATE", "FROM", "SENT/DROPPED")
            for split in splits {
                let counts = [("c2s", split.bytes.clientToServer), ("s2c", split.bytes.serverToClient)]
                    .compactMap { name, bytes in bytes.map { "\(name) \($0.sent)/\($0.dropped)" } }
                table.add(split.id, split.address, split.direction.rawValue, split.onSlow.rawValue,
                          split.failover ? "yes" : "no", split.state.rawValue, split.fromOffset.text,
                          counts.joined(separator: ", "))
            }
            lines += ["", table.text]
        }
        return lines.joined(separator: "\n")
    }
}

extension Components.Schemas.Hop {
    fileprivate func add(to table: inout Table, counts: String) {
        table.add(id, mediator ?? address, direction.rawValue, "\(position)", state.rawValue, splicedAt.text, counts)
    }
}

extension Components.Schemas.Event {
    /// `12 hop.spliced session=s1 hop=h1`.
    var line: String {
        var parts = ["\(seq)", _type.rawValue]
        switch session {
        case .Session(let value): parts.append("session=\(value.id)")
        case .SessionId(let id): parts.append("session=\(id)")
        case nil: break
        }
        for (name, object) in [("listener", listener), ("hop", hop), ("split", split)] {
            if case .some(.some(let id)) = object?.value["id"] as? String? { parts.append("\(name)=\(id)") }
        }
        if let server { parts.append("server=\(server)") }
        if let reason { parts.append("reason=\(reason)") }
        return parts.joined(separator: " ")
    }
}

extension String {
    /// `replacement` when the string is empty.
    func ifEmpty(_ replacement: String) -> String {
        isEmpty ? replacement : self
    }
}
