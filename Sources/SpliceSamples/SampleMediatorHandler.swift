import NIOCore

/// One accepted connection of a sample mediator: a stream filter that writes what it
/// transforms as soon as it has it, half-closes its output after the input's EOF, and
/// stops reading while its peer is not keeping up.
///
/// Back-pressure is `read()` interception (the GlueHandler pattern): a read is issued only
/// while the channel is writable, no transformed input is waiting and the delay line holds
/// less than `maximumHeldBytes`, so memory per connection stays bounded.
final class SampleMediatorHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The most bytes a `delay` connection holds before it stops reading.
    static let maximumHeldBytes = 1 << 20

    private let filter: any StreamFilter
    private let holdTime: TimeAmount?
    private var pending = ByteBuffer()
    private var delayLine = DelayLine()
    private var timer: Scheduled<Void>?
    private var readHeldBack = false
    private var inputClosed = false
    private var finished = false
    private var outputClosing = false
    private var failed = false

    /// A handler applying `filter`, each output byte held for `holdTime` if given.
    init(filter: any StreamFilter, holdTime: TimeAmount?) {
        self.filter = filter
        self.holdTime = holdTime
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if pending.readableBytes == 0 {
            pending = buffer
        } else {
            pending.writeBuffer(&buffer)
        }
        pump(context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? ChannelEvent, event == .inputClosed else {
            return context.fireUserInboundEventTriggered(event)
        }
        inputClosed = true
        finishIfDone(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { pump(context: context) }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    // MARK: outbound

    func read(context: ChannelHandlerContext) {
        if mayRead(context: context) {
            context.read()
        } else {
            readHeldBack = true
        }
    }

    // MARK: moving bytes

    private func mayRead(context: ChannelHandlerContext) -> Bool {
        context.channel.isWritable && pending.readableBytes == 0
            && delayLine.heldBytes < Self.maximumHeldBytes && !failed
    }

    /// Transforms waiting input while the channel can take it, then flushes.
    private func pump(context: ChannelHandlerContext) {
        guard !failed else { return }
        var wrote = false
        do {
            while pending.readableBytes > 0, context.channel.isWritable {
                let output = try filter.transform(&pending, allocator: context.channel.allocator)
                if output.readableBytes > 0 {
                    emit(output, context: context)
                    wrote = true
                }
            }
        } catch {
            return reset(context: context)
        }
        if wrote { context.flush() }
        resumeReading(context: context)
        finishIfDone(context: context)
    }

    /// Writes `output` now, or puts it on the delay line.
    private func emit(_ output: ByteBuffer, context: ChannelHandlerContext) {
        guard let holdTime else {
            return context.write(wrapOutboundOut(output), promise: nil)
        }
        delayLine.append(output, due: .now() + holdTime)
        scheduleRelease(context: context)
    }

    private func scheduleRelease(context: ChannelHandlerContext) {
        guard timer == nil, let due = delayLine.nextDue else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: due) {
            self.timer = nil
            self.release(context: context)
        }
    }

    /// Writes everything whose delay is over, in order.
    private func release(context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        var wrote = false
        while let output = delayLine.popDue(now: now) {
            context.write(wrapOutboundOut(output), promise: nil)
            wrote = true
        }
        if wrote { context.flush() }
        scheduleRelease(context: context)
        resumeReading(context: context)
        finishIfDone(context: context)
    }

    private func resumeReading(context: ChannelHandlerContext) {
        guard readHeldBack, mayRead(context: context) else { return }
        readHeldBack = false
        context.read()
    }

    // MARK: ending

    /// After EOF and once every input byte is transformed and released, writes the filter's
    /// final bytes and half-closes the output.
    private func finishIfDone(context: ChannelHandlerContext) {
        guard inputClosed, !failed, pending.readableBytes == 0 else { return }
        if !finished {
            finished = true
            do {
                let tail = try filter.finish(allocator: context.channel.allocator)
                if tail.readableBytes > 0 {
                    emit(tail, context: context)
                    context.flush()
                }
            } catch {
                return reset(context: context)
            }
        }
        guard delayLine.isEmpty, !outputClosing else { return }
        outputClosing = true
        // Closing the output with writes queued can drop them (TRAPS #1): close only once an
        // empty write, which completes after every earlier one, has gone out.
        let empty = context.channel.allocator.buffer(capacity: 0)
        context.writeAndFlush(wrapOutboundOut(empty)).assumeIsolated().whenComplete { result in
            switch result {
            case .success: context.close(mode: .output, promise: nil)
            case .failure: context.close(promise: nil)
            }
        }
    }

    /// Ends the connection with a reset: the stream cannot go on (corrupt compressed input).
    private func reset(context: ChannelHandlerContext) {
        failed = true
        pending.clear()
        timer?.cancel()
        timer = nil
        guard let provider = context.channel as? any SocketOptionProvider else {
            return context.close(promise: nil)
        }
        provider.setSoLinger(NIOLinger(l_onoff: 1, l_linger: 0)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension SampleMediatorHandler: Sendable {}
