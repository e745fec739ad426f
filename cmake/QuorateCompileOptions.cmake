# Compiler settings for the project's own code. Generated protobuf and gRPC
# code does not get these (see proto/CMakeLists.txt).

set(QUORATE_WARNING_FLAGS
  -Wall -Wextra -Wpedantic -Wshadow -Werror
  -Wnon-virtual-dtor -Woverloaded-virtual -Wimplicit-fallthrough
  -Wformat=2 -Wmissing-declarations -Wundef)
# clang checks the ABSL_GUARDED_BY / ABSL_EXCLUSIVE_LOCKS_REQUIRED
# annotations (util/mutex.h) at compile time.
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND QUORATE_WARNING_FLAGS -Wthread-safety)
endif()

# quorate_target_defaults(<target>): warnings as errors plus the sanitizer
# flags selected by QUORATE_SANITIZE. Every target built from our sources
# calls this.
function(quorate_target_defaults target)
  target_compile_options(${target} PRIVATE ${QUORATE_WARNING_FLAGS})
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "EXECUTABLE" AND NOT QUORATE_SANITIZE STREQUAL "")
    target_sources(${target} PRIVATE
      ${PROJECT_SOURCE_DIR}/cmake/sanitizer_options.cc)
  endif()
endfunction()

# Sanitizers apply to everything compiled in the build, generated code too,
# so that ASan/TSan see every access our process makes through our code.
# Tests that sweep every byte of a file take a stride under the sanitizers,
# which run them many times slower; the plain build sweeps every byte.
if(NOT QUORATE_SANITIZE STREQUAL "")
  add_compile_definitions(QUORATE_SANITIZER_BUILD=1)
endif()

if(QUORATE_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
elseif(QUORATE_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT QUORATE_SANITIZE STREQUAL "")
  message(FATAL_ERROR
    "QUORATE_SANITIZE must be empty, 'address' or 'thread', not '${QUORATE_SANITIZE}'")
endif()
