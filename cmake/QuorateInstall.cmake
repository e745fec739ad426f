# Installation: the library, its public headers, a CMake package
# (quorateConfig.cmake + version file) and a pkg-config file.
include(CMakePackageConfigHelpers)

set(QUORATE_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/quorate")

install(TARGETS quorate
  EXPORT quorateTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT quorateTargets
  NAMESPACE quorate::
  DESTINATION ${QUORATE_CMAKE_DIR})

# Optional components, each in an export of its own that quorateConfig
# loads only when asked for (find_package(quorate COMPONENTS ...)), with
# the outside library it needs.
install(TARGETS quorate_fence_sqlite
  EXPORT quorateFenceSqliteTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT quorateFenceSqliteTargets
  NAMESPACE quorate::
  DESTINATION ${QUORATE_CMAKE_DIR})
install(TARGETS quorate_fence_postgres
  EXPORT quorateFencePostgresTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  FILE_SET HEADERS DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT quorateFencePostgresTargets
  NAMESPACE quorate::
  DESTINATION ${QUORATE_CMAKE_DIR})

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/quorateConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/quorateConfig.cmake"
  INSTALL_DESTINATION ${QUORATE_CMAKE_DIR})
# 0.x releases may break compatibility between minor versions.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/quorateConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/quorateConfig.cmake"
  "${PROJECT_BINARY_DIR}/quorateConfigVersion.cmake"
  DESTINATION ${QUORATE_CMAKE_DIR})

# pkg-config paths are written relative to ${prefix}, so the file works from
# whatever prefix `cmake --install --prefix` chose.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(QUORATE_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  file(RELATIVE_PATH QUORATE_PC_LIBDIR "${CMAKE_INSTALL_PREFIX}" "${CMAKE_INSTALL_FULL_LIBDIR}")
  file(RELATIVE_PATH QUORATE_PC_INCLUDEDIR "${CMAKE_INSTALL_PREFIX}" "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH QUORATE_PC_UP "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  set(QUORATE_PC_PREFIX "\${pcfiledir}/${QUORATE_PC_UP}")
  set(QUORATE_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
  set(QUORATE_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file("${PROJECT_SOURCE_DIR}/cmake/quorate.pc.in"
               "${PROJECT_BINARY_DIR}/quorate.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/quorate.pc"
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
