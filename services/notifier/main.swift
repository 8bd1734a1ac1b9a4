import NotifierService
import ServiceRuntime

await ServiceHost.main(NotifierService.definition)
