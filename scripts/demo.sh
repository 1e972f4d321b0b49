#!/bin/bash
# Placeholder until the COLO issue lands: the target exists so that the
# README's commands are stable.
echo "make demo: not there yet (arrives with the COLO work); see README.md" >&2
exit 1
