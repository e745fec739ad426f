// util/sanitizers.h (tests): which sanitizer this build runs under, for
// tests whose load or timing depends on how fast the build is. Clang says
// so through __has_feature, GCC through __SANITIZE_THREAD__ and
// __SANITIZE_ADDRESS__.
#ifndef QUORATE_TESTS_UTIL_SANITIZERS_H_
#define QUORATE_TESTS_UTIL_SANITIZERS_H_

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define QUORATE_TEST_UNDER_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define QUORATE_TEST_UNDER_ASAN 1
#endif
#endif

namespace quorate::testing {

#if defined(__SANITIZE_THREAD__) || defined(QUORATE_TEST_UNDER_TSAN)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(QUORATE_TEST_UNDER_ASAN)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif

}  // namespace quorate::testing

#endif  // QUORATE_TESTS_UTIL_SANITIZERS_H_
