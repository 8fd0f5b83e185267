// Package training groups the offline training side of ebbflow: the
// training scheduler (training/scheduler: job specs, sizing from history,
// WPAI's score, placement and the pre-emption guard), its Kueue binding
// (training/kueue), its backtest (training/backtest) and the kill budget
// shared with node mixing (training/killbudget).
package training
