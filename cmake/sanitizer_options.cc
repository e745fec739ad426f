// Default options of the sanitizer runtimes, compiled into every executable
// of a sanitizer build (cmake/QuorateCompileOptions.cmake), so that tests,
// quorate-node and the processes tests start all run with them. An
// environment variable (ASAN_OPTIONS, ...) still overrides them.
//
// TSan: Debian's gRPC, abseil and OpenSSL are not built with
// -fsanitize=thread. TSan cannot see the synchronization inside them, and
// reports their internal memcpy/free calls as races unless
// ignore_noninstrumented_modules is set. Our own code is instrumented and
// still checked.
extern "C" {
const char* __asan_default_options() {
  return "detect_leaks=1:abort_on_error=1:strict_string_checks=1";
}
const char* __ubsan_default_options() {
  return "print_stacktrace=1:halt_on_error=1";
}
// gRPC's callback API (the client service) runs template code from gRPC's
// headers, compiled into our binaries and so instrumented, on gRPC's own
// threads, which hand calls to each other inside the uninstrumented
// library. TSan sees the two halves without the synchronization between
// them. These suppress reports whose racing access is in that gRPC code
// itself (the top frame, or gRPC's call reference count); an access to our
// data anywhere else is still reported.
//
// The asynchronous API (the transport's completion queue) likewise runs
// gRPC's header code for an operation on two threads: where it starts, and
// on the io thread inside CompletionQueue::Next() when it completes, with
// the hand-off in the library. Our own side of that hand-off is annotated
// (transport/cq.h, TsanStarting/TsanTaken); gRPC's side, which runs inside
// Next() before our code sees the event, is suppressed here: the message
// buffers and operation sets of grpc/impl/call_op_set.h.
const char* __tsan_default_suppressions() {
  return "race_top:grpc::internal::\n"
         "race_top:grpc::ByteBuffer::\n"
         "race:grpc::internal::CallOp\n"
         "race:grpc::internal::InterceptorBatchMethodsImpl\n"
         "race_top:grpc::ServerUnaryReactor::\n"
         "race:grpc::internal::ServerCallbackCall::\n"
         "race:grpc::internal::CallbackWithSuccessTag::Set\n"
         "race:grpc::internal::CallbackWithSuccessTag::Run\n"
         // Finish() before gRPC bound the reactor: gRPC's own mutex (in
         // the library) orders the two.
         "race:grpc::ServerUnaryReactor::InternalBindCall\n"
         "race:grpc::ServerUnaryReactor::Finish\n";
}
const char* __tsan_default_options() {
  return "halt_on_error=1:second_deadlock_stack=1:"
         "ignore_noninstrumented_modules=1";
}
}
