import Bus
import Messages

/// The router answered a request with an error.
public struct InferenceFailure: Error, Equatable, CustomStringConvertible {
    public let error: InferenceError
    public var description: String { "inference failed (\(error.code)): \(error.message)" }
}

/// Client side of the router's ROUTER: sends an InferenceRequest and streams the TokenResults back.
public final class InferenceClient: @unchecked Sendable {  // safe: the RequestClient confines its socket to its loop
    let client: RequestClient

    public init(router: String, id: String, context: BusContext = .shared) throws {
        client = try RequestClient(connect: router, sender: id, context: context)
    }

    public func close() { client.close() }

    /// Tokens as they come; throws `InferenceFailure` on an error reply, `BusError.timeout` if nothing comes.
    public func generate(_ request: InferenceRequest, timeout: Duration = .seconds(30)) -> AsyncThrowingStream<TokenResult, Error> {
        let client = self.client
        return AsyncThrowingStream { cont in
            let task = Task {
                do {
                    let first = try await client.request(.inferRequest(request), timeout: timeout)
                    if try Self.accept(first, request.requestId, cont) { return }
                    for await env in client.incoming {
                        if try Self.accept(env, request.requestId, cont) { return }
                    }
                    cont.finish(throwing: BusError.stopped)
                } catch {
                    cont.finish(throwing: error)
                }
            }
            cont.onTermination = { _ in task.cancel() }
        }
    }

    /// Yields a token; true when the stream is over.
    static func accept(_ env: Envelope, _ id: String, _ cont: AsyncThrowingStream<TokenResult, Error>.Continuation) throws -> Bool {
        switch env.body {
        case .token(let t) where t.requestId == id:
            cont.yield(t)
            if t.done { cont.finish() }
            return t.done
        case .error(let e) where e.requestId == id:
            throw InferenceFailure(error: e)
        default:
            return false
        }
    }
}
