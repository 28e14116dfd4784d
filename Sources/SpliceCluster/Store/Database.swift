import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// The connections to the cluster's PostgreSQL, each operation bounded in time.
///
/// Not postgres-nio's `PostgresClient`: its pool backs off up to a minute between attempts
/// and queues requests meanwhile, while a node must notice the database's return within a
/// second and must never hold an admin request for long. Here every operation takes an
/// idle connection or opens one (2 s connect timeout), runs under a deadline that closes
/// the connection when it passes, and a connection that saw any error is dropped.
final class Database: Sendable {
    /// How long one operation (connect included) may take.
    static let operationLimit: Duration = .milliseconds(2500)
    /// Idle connections kept for reuse.
    private static let idleLimit = 4

    let url: DatabaseURL
    let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let idle = Mutex<[PostgresConnection]>([])
    private let closed = Atomic<Bool>(false)

    /// Connections to `url`, on a thread of their own (the relay's loops stay the relay's).
    init(url: DatabaseURL, logger: Logger) {
        self.url = url
        self.logger = logger
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// Opens a new connection within `operationLimit` (the LISTEN loop keeps its own). The
    /// connect timeout covers TCP only: a server, or a network, that accepts and then says
    /// nothing would hold the start-up exchange forever.
    func connect() async throws -> PostgresConnection {
        let opened = Mutex<PostgresConnection?>(nil)
        do {
            return try await withDeadline(Self.operationLimit, abandon: {}) { [self] in
                // Cancelled by the deadline, postgres-nio closes the half-open channel.
                let connection = try await PostgresConnection.connect(
                    on: group.next(), configuration: url.configuration,
                    id: Self.nextID.add(1, ordering: .relaxed).newValue, logger: logger)
                opened.withLock { $0 = connection }
                return connection
            }
        } catch {
            // Opened just as the deadline passed: not handed out, so closed here.
            opened.withLock { $0 }?.closeNow()
            throw error
        }
    }

    private static let nextID = Atomic<Int>(0)

    /// Runs `body` on a connection within `limit`; throws `ClusterError` when the database
    /// cannot be reached or does not answer in time, else `body`'s own error.
    func run<T: Sendable>(limit: Duration = Database.operationLimit,
                          _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let taken = Mutex<PostgresConnection?>(nil)
        do {
            return try await withDeadline(limit, abandon: {
                taken.withLock { $0 }?.closeNow()
            }) { [self] in
                let connection = try await checkOut()
                taken.withLock { $0 = connection }
                let value = try await body(connection)
                checkIn(connection)
                return value
            }
        } catch {
            taken.withLock { $0 }?.closeNow()
            throw Self.classify(error)
        }
    }

    /// Runs `body` in a transaction, within `limit`.
    func transaction<T: Sendable>(limit: Duration = Database.operationLimit,
                                  _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await run(limit: limit) { [logger] connection in
            do {
                return try await connection.withTransaction(logger: logger) { try await body($0) }
            } catch let error as PostgresTransactionError {
                // The closure's own error says what went wrong; BEGIN/COMMIT failures are the link's.
                throw error.closureError ?? error.beginError ?? error.commitError ?? error
            }
        }
    }

    private func checkOut() async throws -> PostgresConnection {
        while let connection = idle.withLock({ $0.popLast() }) {
            if !connection.isClosed { return connection }
        }
        return try await connect()
    }

    private func checkIn(_ connection: PostgresConnection) {
        let keep = !closed.load(ordering: .relaxed) && idle.withLock { idle in
            guard idle.count < Self.idleLimit, !connection.isClosed else { return false }
            idle.append(connection)
            return true
        }
        if !keep { connection.closeNow() }
    }

    /// Closes every idle connection and the thread (at stop).
    func close() async {
        closed.store(true, ordering: .relaxed)
        for connection in idle.withLock({ idle in defer { idle.removeAll() }; return idle }) {
            try? await connection.close()
        }
        try? await group.shutdownGracefully()
    }

    /// A server's refusal (a constraint, a bad statement) stays as it is, for the caller to
    /// read; everything else means the database is out of reach.
    private static func classify(_ error: any Error) -> any Error {
        if let error = error as? PSQLError, error.code == .server { return error }
        if error is ClusterError { return error }
        return ClusterError(reason(error))
    }

    /// What went wrong, in words (PSQLError hides its details from `description`).
    static func reason(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }
}

extension PSQLError {
    /// The SQLSTATE of a server error (`23505` is a unique violation).
    var sqlState: String? { serverInfo?[.sqlState] }
}

extension PostgresConnection {
    /// Closes at once, failing whatever waits on it (`close()` alone is ambiguous between
    /// the future and the async overloads). The connection is kept until its channel has
    /// closed: postgres-nio asserts that none is freed while still open.
    func closeNow() {
        let closing: EventLoopFuture<Void> = close()
        closing.whenComplete { _ in withExtendedLifetime(self) {} }
    }
}
