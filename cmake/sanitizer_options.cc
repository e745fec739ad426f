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
const char* __tsan_default_options() {
  return "halt_on_error=1:second_deadlock_stack=1:"
         "ignore_noninstrumented_modules=1";
}
}
