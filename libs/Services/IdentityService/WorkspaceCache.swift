import Foundation
import VigilCore

/// The workspace rows `GET /auth/me` answers with, kept a few seconds per replica: the authenticated read
/// every client makes costs a bus hop, not a database round trip as well. A change (rename, settings) is
/// broadcast after commit and drops the copy on every replica; a read racing a change is not kept (see
/// `RefreshingCache`). A lost broadcast leaves a copy stale for the cache's time at most.
let workspaceCache = RefreshingCache<WorkspaceView>(ttl: .seconds(5), capacity: 50_000)
