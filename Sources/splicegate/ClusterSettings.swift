import SpliceCluster
import SplicePeerClient

/// `--cluster-db` and the flags that only mean something with it.
struct ClusterSettings {
    /// The database holding the cluster's configuration and membership.
    var database: DatabaseURL
    /// This node's name (`--node`); nil: the host name and the admin port.
    var node: String?
    /// How the other nodes reach this node's admin API (`--advertise`); nil: the bound one.
    var advertise: String?
    /// Replaces the host of every cluster listener on this node (`--bind-host`).
    var bindHost: String?

    /// What the config file's `cluster` object says, before the flags are applied.
    struct FromFile {
        var databaseURL: String?
        var node: String?
        var advertise: String?
        var bindHost: String?
    }

    /// Applies the flags over the config file's `cluster` object; the database replaces
    /// the state file, so both together are refused.
    static func apply(_ command: Splicegate, to settings: inout Settings) throws {
        let file = settings.clusterFile
        let url = command.clusterDB ?? file.databaseURL
        let node = command.node ?? file.node
        let advertise = command.advertise ?? file.advertise
        let bindHost = command.bindHost ?? file.bindHost
        guard let url else {
            for (flag, value) in [("--node", node), ("--advertise", advertise), ("--bind-host", bindHost)] where value != nil {
                throw StartupError("\(flag) needs --cluster-db")
            }
            return
        }
        guard settings.stateFile == nil else {
            throw StartupError("--cluster-db and --state-file cannot be used together: the cluster database replaces the state file")
        }
        if let node, node.isEmpty || node.count > 128 || node.contains(where: { $0.isWhitespace }) {
            throw StartupError("--node must be 1-128 characters without spaces")
        }
        // The other nodes reach this one through PeerClient: plain HTTP to a host and port.
        if let advertise {
            guard let (_, port) = PeerClient.hostPort(advertise), port > 0 else {
                throw StartupError("--advertise must be http://HOST:PORT with no path, such as "
                    + "http://10.0.0.5:8080 (the other nodes reach this node there over plain HTTP), not '\(advertise)'")
            }
        } else if ["0.0.0.0", "::", "[::]"].contains(settings.admin.host) {
            throw StartupError("--admin \(settings.admin) is a wildcard address the other nodes cannot reach: "
                + "give --advertise http://HOST:PORT")
        }
        if let bindHost, bindHost.isEmpty || bindHost.contains(where: { $0.isWhitespace || $0 == "/" }) {
            throw StartupError("--bind-host must be a host name or IP address")
        }
        do {
            settings.cluster = ClusterSettings(database: try DatabaseURL(parsing: url), node: node,
                                               advertise: advertise.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 },
                                               bindHost: bindHost)
        } catch {
            throw StartupError(error.description)
        }
    }
}
