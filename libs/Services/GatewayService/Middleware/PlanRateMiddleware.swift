import Hummingbird

/// The workspace plan's API rate (requests per minute, cached from billing): 429 beyond it. Only
/// authenticated requests count; public routes have no workspace.
struct PlanRateMiddleware: RouterMiddleware {
    typealias Context = GatewayContext
    let planRates: PlanRates

    func handle(
        _ request: Request, context: GatewayContext,
        next: (Request, GatewayContext) async throws -> Response
    ) async throws -> Response {
        if let principal = context.principal?.principal { try await planRates.check(tenant: principal.tenantId) }
        return try await next(request, context)
    }
}
