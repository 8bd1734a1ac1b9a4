import IdentityService
import ServiceRuntime

await ServiceHost.main(IdentityService.definition)
