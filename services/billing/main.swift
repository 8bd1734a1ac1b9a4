import BillingService
import ServiceRuntime

await ServiceHost.main(BillingService.definition)
