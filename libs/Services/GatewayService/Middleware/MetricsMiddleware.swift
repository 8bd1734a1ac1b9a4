import Hummingbird
import Metrics
import Synchronization

/// Counts every request of a route by method and status and times it (`vigil_gateway_requests_total`,
/// `vigil_gateway_request_duration`), errors included: it sits outside the envelope middleware.
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let route: Route
    let metrics = RouteMetrics()

    /// A route's timer and its counters by status, made on first use and kept, instead of a registry lookup (a
    /// lock and a search by label and dimensions) for each on every request. A route never called shows none.
    final class RouteMetrics: Sendable {
        private let made = Mutex<(timer: Timer?, counters: [Int: Counter])>((nil, [:]))

        func record(route: Route, status: Int, nanoseconds: Int64) {
            let (timer, counter) = made.withLock { m -> (Timer, Counter) in
                let timer = m.timer ?? Timer(label: "vigil_gateway_request_duration", dimensions: [("route", route.path)])
                m.timer = timer
                if let c = m.counters[status] { return (timer, c) }
                let c = Counter(
                    label: "vigil_gateway_requests_total",
                    dimensions: [("method", route.method.rawValue), ("route", route.path), ("status", String(status))])
                m.counters[status] = c
                return (timer, c)
            }
            counter.increment()
            timer.recordNanoseconds(nanoseconds)
        }
    }

    func handle(
        _ request: Request, context: GatewayContext,
        next: (Request, GatewayContext) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        metrics.record(route: route, status: Int(response.status.code), nanoseconds: (ContinuousClock.now - start).nanoseconds)
        return response
    }
}
