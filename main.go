// Command bridge is an SSH server in front of a PaaS's one-off containers.
package main

func main() {}
