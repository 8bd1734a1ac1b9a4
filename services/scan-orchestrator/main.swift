import ScanService
import ServiceRuntime

await ServiceHost.main(ScanService.definition)
