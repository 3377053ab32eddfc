// The system tests' network lab lives in lab/ (the end-to-end demo uses it too).
export * from '../../lab/netns.js';
