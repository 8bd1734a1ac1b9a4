import FindingsService
import ServiceRuntime

await ServiceHost.main(FindingsService.definition)
