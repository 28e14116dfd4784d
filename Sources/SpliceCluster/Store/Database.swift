import Logging
import NIOCore
import NIOPosix
import NIOSSL
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
    /// Operations at once: the most connections a node holds besides its LISTEN one, so
    /// that a burst of admin requests cannot take every connection the server has.
    static let concurrencyLimit = 8
    /// An idle connection older than this is closed rather than reused: a NAT or a load
    /// balancer may have dropped it silently meanwhile, and a query on it would wait out
    /// the whole deadline.
    private static let idleAge: Duration = .seconds(30)

    let url: DatabaseURL
    let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let idle = Mutex<[(connection: PostgresConnection, since: ContinuousClock.Instant)]>([])
    private let slots = Slots(Database.concurrencyLimit)
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
        let hold = Mutex(Hold.none)
        do {
            return try await withDeadline(Self.operationLimit, abandon: {
                hold.withLock { $0.abandon() }?.closeNow()
            }) { [self] in
                // Cancelled by the deadline, postgres-nio closes the half-open channel.
                let connection = try await PostgresConnection.connect(
                    on: group.next(), configuration: url.configuration,
                    id: Self.nextID.add(1, ordering: .relaxed).newValue, logger: logger)
                // Opened just as the deadline passed: not handed out, so closed here.
                guard hold.withLock({ $0.take(connection) }) else {
                    connection.closeNow()
                    throw DeadlineExceeded()
                }
                try await Self.endWhenAbandoned(connection, logger: logger)
                return connection
            }
        } catch {
            hold.withLock { $0.abandon() }?.closeNow()
            throw error
        }
    }

    private static let nextID = Atomic<Int>(0)

    /// Asks the server to end this connection's backend within a second once the connection
    /// is gone while a statement runs (PostgreSQL 14 and later; older ones answer 42704 and
    /// go without). A connection the deadline closed may have left its backend waiting on a
    /// lock, holding its own: without this it stays, and one more piles up each round
    /// until the server has no connection left to give.
    private static func endWhenAbandoned(_ connection: PostgresConnection, logger: Logger) async throws {
        do {
            try await connection.query("SET client_connection_check_interval = 1000", logger: logger)
        } catch let error as PSQLError where error.sqlState == "42704" {
        }
    }

    /// Runs `body` on a connection within `limit`, the wait for a turn (`concurrencyLimit`)
    /// included; throws `ClusterError` when the database cannot be reached or does not
    /// answer in time, else `body`'s own error.
    func run<T: Sendable>(limit: Duration = Database.operationLimit,
                          _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + limit
        guard await slots.acquire(until: deadline) else {
            throw ClusterError("this node's \(Self.concurrencyLimit) database connections stayed busy")
        }
        // Given back when the caller is answered: a body the deadline abandoned holds no
        // open connection any more (abandoning closes it).
        defer { slots.release() }
        let hold = Mutex(Hold.none)
        do {
            return try await withDeadline(deadline - ContinuousClock.now, abandon: {
                hold.withLock { $0.abandon() }?.closeNow()
            }) { [self] in
                let connection = try await checkOut()
                // Taken just as the deadline passed: nothing would close it, and a query on
                // it could wait on a lock for as long as another transaction holds it.
                guard hold.withLock({ $0.take(connection) }) else {
                    logger.debug("database connection came after the deadline, closed")
                    connection.closeNow()
                    throw DeadlineExceeded()
                }
                let value = try await body(connection)
                // Done just as the deadline passed: the caller was told it failed, and the
                // connection it closed is not for reuse.
                if hold.withLock({ $0.release() }) { checkIn(connection) }
                return value
            }
        } catch {
            hold.withLock { $0.abandon() }?.closeNow()
            throw Self.classify(error)
        }
    }

    /// The connection an operation holds, and whether its deadline has passed: whichever
    /// of the operation and its deadline comes second knows what to close.
    private enum Hold {
        case none
        case holding(PostgresConnection)
        /// The operation is done with its connection (handed out or back to the pool).
        case released
        case abandoned

        /// Records `connection` as held; false once abandoned.
        mutating func take(_ connection: PostgresConnection) -> Bool {
            if case .abandoned = self { return false }
            self = .holding(connection)
            return true
        }

        /// The operation is done with the connection; false if abandoned meanwhile (the
        /// deadline closed it).
        mutating func release() -> Bool {
            if case .abandoned = self { return false }
            self = .released
            return true
        }

        /// Marks the operation abandoned; the connection to close, if one is still held.
        mutating func abandon() -> PostgresConnection? {
            defer { self = .abandoned }
            if case .holding(let connection) = self { return connection }
            return nil
        }
    }

    /// Runs `body` in a transaction, within `limit`. A failure once COMMIT has been sent
    /// (the deadline, a lost link, a backend ended while it waits for a synchronous standby)
    /// leaves the outcome unknown: it throws `ClusterError` with `outcomeUnknown`. Whether
    /// COMMIT was sent is decided once, under a lock: a caller told "not committed" (the
    /// deadline passed first) is never contradicted by a COMMIT its body sends later.
    ///
    /// Not postgres-nio's `withTransaction`: after a failed statement it sends ROLLBACK, and
    /// on a connection the deadline has just closed that query is never answered (1.33
    /// writes it to the closed channel without a promise). No ROLLBACK is needed: a
    /// connection that saw an error is closed, and the server rolls back what it had open.
    /// So `body` must not catch a statement's error and go on: the transaction is aborted
    /// then, and its COMMIT would roll back without a word.
    func transaction<T: Sendable>(limit: Duration = Database.operationLimit,
                                  _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let commit = Mutex(CommitState.notYet)
        do {
            return try await run(limit: limit) { [logger] connection in
                try await connection.query("BEGIN", logger: logger)
                let value = try await body(connection)
                // Closed by the deadline: COMMIT is not sent, and the caller must not hear it was.
                guard !connection.isClosed, commit.withLock({ $0.send() }) else { throw DeadlineExceeded() }
                try await connection.query("COMMIT", logger: logger)
                return value
            }
        } catch {
            guard commit.withLock({ $0.settle() }), !Self.refusedCommit(error) else { throw error }
            throw ClusterError(Self.reason(error), outcomeUnknown: true)
        }
    }

    /// Whether a transaction's COMMIT has been sent, decided once between its body and its
    /// caller.
    private enum CommitState {
        case notYet
        case sent
        /// The caller has answered that nothing was committed: COMMIT is never sent.
        case withheld

        /// The body is about to send COMMIT; false if the caller has answered already.
        mutating func send() -> Bool {
            guard case .notYet = self else { return false }
            self = .sent
            return true
        }

        /// The caller answers a failure: whether COMMIT was sent (outcome unknown).
        mutating func settle() -> Bool {
            if case .sent = self { return true }
            self = .withheld
            return false
        }
    }

    /// A COMMIT the server refused outright (a deferred constraint, a serialization
    /// failure) changed nothing; any other failure after COMMIT was sent may have come
    /// after the server committed.
    private static func refusedCommit(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, error.code == .server, let state = error.sqlState else { return false }
        return state.hasPrefix("23") || state.hasPrefix("40")
    }

    private func checkOut() async throws -> PostgresConnection {
        let now = ContinuousClock.now
        while let (connection, since) = idle.withLock({ $0.popLast() }) {
            if !connection.isClosed && now - since < Self.idleAge { return connection }
            connection.closeNow()
        }
        return try await connect()
    }

    private func checkIn(_ connection: PostgresConnection) {
        let now = ContinuousClock.now
        let open = !closed.load(ordering: .relaxed)
        let (keep, stale) = idle.withLock { idle -> (Bool, [PostgresConnection]) in
            let stale = idle.filter { now - $0.since >= Self.idleAge }.map(\.connection)
            idle.removeAll { now - $0.since >= Self.idleAge }
            guard open, idle.count < Self.idleLimit, !connection.isClosed else { return (false, stale) }
            idle.append((connection, now))
            return (true, stale)
        }
        for connection in stale { connection.closeNow() }
        if !keep { connection.closeNow() }
    }

    /// Closes every idle connection and the thread (at stop).
    func close() async {
        closed.store(true, ordering: .relaxed)
        let connections = idle.withLock { idle -> [PostgresConnection] in
            defer { idle.removeAll() }
            return idle.map(\.connection)
        }
        for connection in connections {
            try? await connection.close()
        }
        try? await group.shutdownGracefully()
    }

    /// A server's refusal (a constraint, a bad statement) stays as it is, for the caller to
    /// read; everything else means the database is out of reach.
    private static func classify(_ error: any Error) -> any Error {
        if let error = error as? PSQLError, error.code == .server { return error }
        if error is ClusterError || error is NodeIdentityError { return error }
        return ClusterError(reason(error), permanent: tlsFailure(error) != nil)
    }

    /// What went wrong, in words (PSQLError hides its details from `description`).
    static func reason(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            if let tls = tlsFailure(error) { return tls }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }

    /// A TLS set-up the server refused or whose certificate did not pass, in words; nil
    /// for any other failure. Waiting does not cure these.
    static func tlsFailure(_ error: any Error) -> String? {
        guard let error = error as? PSQLError else { return nil }
        if error.code == .sslUnsupported {
            return "the server does not offer TLS, which sslmode asks for (sslmode=prefer or disable to go without)"
        }
        guard let underlying = error.underlying, underlying is NIOSSLError || underlying is BoringSSLError else {
            return nil
        }
        let text = "\(underlying)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "TLS: the server's certificate is not signed by a CA this node trusts (sslrootcert), "
                + "or does not name the URL's host (CERTIFICATE_VERIFY_FAILED)"
        }
        return "TLS handshake failed (\(text.split(separator: " at ").first ?? Substring(text)))"
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
