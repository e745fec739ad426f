# cmake -DBINARY=... -DOUTPUT=... -P write_help.cmake: writes BINARY's
# --help text to OUTPUT (the package's man-style help texts), failing the
# build if --help fails or prints nothing.
execute_process(COMMAND "${BINARY}" --help
  OUTPUT_FILE "${OUTPUT}.tmp" ERROR_FILE "${OUTPUT}.tmp"
  RESULT_VARIABLE rc)
file(SIZE "${OUTPUT}.tmp" size)
if(NOT rc EQUAL 0 OR size EQUAL 0)
  message(FATAL_ERROR "${BINARY} --help exited ${rc} with ${size} bytes")
endif()
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
