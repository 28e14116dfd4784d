import Dispatch
import SpliceCore
import SpliceDataPlane

/// A gateway on its own: changes go to its data plane, then to the state file (if any).
/// A change that cannot be saved is undone, so a restart never brings back less, or more,
/// than the API answered.
public struct LocalAuthority: ConfigAuthority {
    private let gateway: Gateway
    private let persist: Persistence

    /// The authority over `gateway`, saving through `persist`.
    public init(gateway: Gateway, persist: Persistence = .none) {
        self.gateway = gateway
        self.persist = persist
    }

    public func addListener(_ spec: ListenerSpec) async throws(APIError) -> ListenerSnapshot {
        let listener = try await gateway.addingListener(spec).value
        do throws(APIError) {
            try await save()
        } catch {
            // Not saved means not done: a listener that would vanish on restart is undone.
            try? await gateway.removingListener(listener.id, closeSessions: true).value
            throw APIError.stateNotSaved("listener not created: \(error.detail)")
        }
        return listener
    }

    public func removeListener(_ id: ListenerID, closeSessions: Bool) async throws(APIError) {
        try await gateway.removingListener(id, closeSessions: closeSessions).value
        do throws(APIError) {
            try await save()
        } catch {
            throw APIError.stateNotSaved("listener \(id) stopped, but \(error.detail)")
        }
    }

    public func registerMediator(_ spec: MediatorSpec) async throws(APIError) -> MediatorSnapshot {
        try gateway.registerMediator(spec)
        do throws(APIError) {
            try await save()
        } catch {
            // Not saved means not done: undo the registration (nothing uses it yet).
            try? gateway.unregisterMediator(spec.name)
            throw APIError.stateNotSaved("mediator not registered: \(error.detail)")
        }
        return try gateway.registeredMediator(spec.name)
    }

    public func unregisterMediator(_ name: MediatorName) async throws(APIError) {
        try gateway.unregisterMediator(name)
        do throws(APIError) {
            try await save()
        } catch {
            throw APIError.stateNotSaved("mediator '\(name)' unregistered, but \(error.detail)")
        }
    }

    public func listenersNotHeld(besides held: Set<ListenerID>) -> [ListenerSnapshot] { [] }

    public func binds(of listener: ListenerID) -> [ListenerBind]? { nil }

    /// Writes the state file on a dispatch thread: its fsyncs must not hold a thread of the
    /// cooperative pool, which the cluster's tasks and every other change share.
    private func save() async throws(APIError) {
        let persist = persist
        let result: Result<Void, APIError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                do throws(APIError) {
                    try persist()
                    continuation.resume(returning: .success(()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        try result.get()
    }
}
