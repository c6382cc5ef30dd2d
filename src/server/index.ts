export { type RunningService, type ServiceSeams, startService } from "./service.js";
export { type RunningGrpcServer, startGrpcServer } from "./grpc-server.js";
