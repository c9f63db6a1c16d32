// Command meshsim estimates the durability of a meshdrive grid: how likely
// a segment is to be lost in a year for a grid size, a choice of k and m,
// node failure rates and a repair speed, and what repair costs.
//
// It is a discrete-event simulation of N nodes holding S segments placed by
// the drive's own placement (remote.Placer: weighted rendezvous hashing of
// (segment, shard index), zones spread). Nodes die for good (exponential
// or Weibull lifetimes at an annual failure rate) and go away for a while
// (outages, exponential durations); zones can die or go away as a whole.
// A node down longer than the detection delay is counted down and the
// segments it held are owed repair by remote.RepairPolicy (repair when
// fewer than Below shards are stored; most endangered first, then oldest).
// A repair runs on a node that holds a readable shard of the segment, one
// at a time per node, reading k shards and writing every missing one
// through that node's link at the repair bandwidth; rebuilt shards go where
// remote.Placer puts them. A dead node is replaced by an empty one after a
// delay.
//
// # Rare events
//
// A loss a year of 1e-11 cannot be counted in any simulation. meshsim
// counts what it can (the "direct" column) and reports, as its estimate,
// the loss probability of one segment's Markov chain (state: shards gone
// for good) whose failure rates are the inputs and whose repair rates are
// measured in the simulation (repairs seen from each state over the time
// segments spent there). The chain is solved for the probability of loss
// per excursion from the healthy state directly, so probabilities far below
// 1e-15 keep their digits. States the run repaired from fewer than 20
// times borrow the rates of the nearest shallower state. The chain treats segments as
// independent and repair times as exponential with the measured mean;
// docs/DURABILITY.md says what that means for the numbers.
//
// # Validation
//
// sim_test.go runs the simulator on grids whose segments follow a
// birth-death chain with a closed form (exponential deaths, exponential or
// fixed repair times) and fails when the formula falls outside the
// simulation's 95% interval.
package main
