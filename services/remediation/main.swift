import DomainServices
import ServiceRuntime

await ServiceHost.main(DomainServices.remediation)
