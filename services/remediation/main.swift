import RemediationService
import ServiceRuntime

await ServiceHost.main(RemediationService.definition)
