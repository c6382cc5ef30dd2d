export { type CheckHandler, type RunningGrpcServer, startGrpcServer } from "./grpc-server.js";
export { type ReloadEvent, type RunningService, type ServiceSeams, startService } from "./service.js";
