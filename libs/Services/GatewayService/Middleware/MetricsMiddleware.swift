import Hummingbird
import Metrics

/// Counts every request of a route by method and status and times it (`vigil_gateway_requests_total`,
/// `vigil_gateway_request_duration`), errors included: it sits outside the envelope middleware.
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let route: Route

    func handle(
        _ request: Request, context: GatewayContext,
        next: (Request, GatewayContext) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let dims = [("method", route.method.rawValue), ("route", route.path), ("status", String(response.status.code))]
        Counter(label: "vigil_gateway_requests_total", dimensions: dims).increment()
        Timer(label: "vigil_gateway_request_duration", dimensions: [("route", route.path)])
            .recordNanoseconds((ContinuousClock.now - start).nanoseconds)
        return response
    }
}
