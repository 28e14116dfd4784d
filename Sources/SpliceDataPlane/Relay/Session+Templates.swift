import NIOCore
import SpliceCore

/// A listener's templates: the mediators and splits every new session gets at offset 0,
/// in place before the session's first read.
extension Session {
    /// Adds the listener's splits one after the other; a recipient that cannot be reached is
    /// skipped (a split never costs the session). Then the session starts reading.
    func applySplitTemplates(_ pending: ArraySlice<SplitRequest>) {
        guard !ending, client != nil, server != nil else { return }
        guard let request = pending.first else {
            guard machine.templatesApplied() else { return }
            for port in allPorts {
                port.socket.resumeRead()
            }
            return
        }
        addSplit(registry.makeSplitID(), request: request).assumeIsolated().whenComplete { result in
            if case .failure(let error) = result {
                self.logger.warning("listener split could not be added", metadata: [
                    "recipient": "\(request.address)", "error": "\(error)",
                ])
            }
            self.applySplitTemplates(pending.dropFirst())
        }
    }

    /// Splices the listener's mediators one after the other, then calls `done`; a template
    /// that cannot be spliced is skipped under `bypass` and ends the session otherwise.
    func applyTemplates(_ pending: ArraySlice<HopRequest>, then done: @escaping () -> Void) {
        guard !ending else { return }
        guard let request = pending.first else { return done() }
        let next = pending.dropFirst()
        // Templates were checked when the listener was created.
        splice(registry.makeHopID(), request: request, allowAdHoc: true).assumeIsolated().whenComplete { result in
            switch result {
            case .success: self.applyTemplates(next, then: done)
            case .failure(let error): self.templateFailed(request, error, next, done)
            }
        }
    }

    private func templateFailed(_ request: HopRequest, _ error: any Error, _ next: ArraySlice<HopRequest>,
                                _ done: @escaping () -> Void) {
        logger.warning("listener mediator could not be spliced", metadata: [
            "error": "\(error)", "on_failure": "\(request.onFailure.rawValue)",
        ])
        if request.onFailure == .bypass {
            applyTemplates(next, then: done)
        } else {
            end(.mediatorFailed)
        }
    }
}
